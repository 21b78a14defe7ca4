//! The `skiff/deploy` built-in plugin: adapts `skiff_deploy::step` (settings from `PLUGIN_*`,
//! a non-interactive deploy) to the runner's `BuiltinStep` trait, so a pipeline step with
//! `image: skiff/deploy` deploys from the runner host with a kubeconfig taken from a secret.
//! Lives in the binary so that neither library depends on the other. See docs/deploy.md.

use skiff_deploy::step::StepSettings;
use skiff_runner::builtin::image_is;
use skiff_runner::{BuiltinContext, BuiltinFuture, BuiltinLog, BuiltinStep};
use tokio_util::sync::CancellationToken;

/// The image name that selects this built-in (any tag).
pub const IMAGE: &str = "skiff/deploy";

/// The deploy step.
pub struct DeployStep;

impl BuiltinStep for DeployStep {
    fn matches(&self, image: &str) -> bool {
        image_is(image, IMAGE)
    }

    fn run(&self, ctx: BuiltinContext) -> BuiltinFuture<'_> {
        Box::pin(async move {
            let log = ctx.log.clone();
            let settings = match StepSettings::from_env(&ctx.env, &ctx.workspace) {
                Ok(settings) => settings,
                Err(error) => {
                    log.line(&format!("skiff/deploy: {error}"));
                    return 1;
                }
            };
            let files: Vec<String> = settings
                .files
                .iter()
                .map(|f| {
                    let shown = f.strip_prefix(&ctx.workspace).unwrap_or(f);
                    shown.display().to_string()
                })
                .collect();
            log.line(&format!(
                "skiff/deploy: app {} from {} (timeout {}s)",
                settings.app,
                files.join(", "),
                settings.timeout.as_secs()
            ));
            // The deploy engine's future is not `Send` as far as the compiler can prove
            // (higher-ranked closures inside), so it runs on a blocking thread of the same
            // runtime instead of inside this boxed `Send` future.
            let handle = tokio::runtime::Handle::current();
            let cancel = ctx.cancel.clone();
            let thread_log = log.clone();
            let task = tokio::task::spawn_blocking(move || {
                handle.block_on(deploy(settings, thread_log, cancel))
            });
            match task.await {
                Ok(code) => code,
                Err(error) => {
                    log.line(&format!("skiff/deploy: the deploy task failed: {error}"));
                    1
                }
            }
        })
    }
}

/// The deploy itself; stops between API calls when `cancel` fires.
async fn deploy(settings: StepSettings, log: BuiltinLog, cancel: CancellationToken) -> i64 {
    let say = |line: String| log.line(&line);
    tokio::select! {
        result = skiff_deploy::step::run(&settings, &say) => match result {
            Ok(_) => 0,
            Err(error) => {
                say(format!("skiff/deploy: deploy failed: {error}"));
                1
            }
        },
        _ = cancel.cancelled() => {
            say("skiff/deploy: cancelled".into());
            137
        }
    }
}
