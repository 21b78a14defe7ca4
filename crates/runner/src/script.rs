//! Turns a step's `commands` into the shell script Drone runs (ci.md §2.9), so that logs and
//! behaviour match `drone exec`: `set -e`, no `set -x`, and one `echo + "cmd"` trace line
//! before each command. Pure: no I/O, unit-tested here.

use skiff_pipeline::go_quote;

/// Entrypoint given to containers that run commands: the script travels in `DRONE_SCRIPT`.
pub const ENTRYPOINT: [&str; 2] = ["/bin/sh", "-c"];
/// Command given to containers that run commands (Drone's exact string).
pub const COMMAND: &str = "echo \"$DRONE_SCRIPT\" | /bin/sh";
/// The environment variable that carries the script into the container.
pub const SCRIPT_ENV: &str = "DRONE_SCRIPT";

/// Prologue of every script: write `.netrc` if the runner provided one, hide the script and
/// the credentials from the commands, and stop at the first failing command.
const PROLOGUE: &str = r#"
if [ ! -z "${DRONE_NETRC_FILE}" ]; then
	echo $DRONE_NETRC_FILE > $HOME/.netrc
	chmod 600 $HOME/.netrc
fi
unset DRONE_SCRIPT
unset DRONE_NETRC_MACHINE
unset DRONE_NETRC_USERNAME
unset DRONE_NETRC_PASSWORD
unset DRONE_NETRC_FILE
set -e
"#;

/// The posix script for `commands`, byte-for-byte in Drone's shape.
pub fn posix_script(commands: &[String]) -> String {
    let mut script = String::with_capacity(PROLOGUE.len() + commands.len() * 48);
    script.push('\n');
    script.push_str(PROLOGUE);
    for command in commands {
        script.push_str("\necho + ");
        script.push_str(&trace_quote(command));
        script.push('\n');
        script.push_str(command);
        script.push('\n');
    }
    script
}

/// The argument of the trace `echo`: Go's `%q` of the command with every `$` escaped, so the
/// shell prints the command instead of expanding it.
pub fn trace_quote(command: &str) -> String {
    go_quote(command).replace('$', "\\$")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn script_has_drone_shape() {
        let script = posix_script(&cmds(&["go build", "go test"]));
        let expected = "\n\nif [ ! -z \"${DRONE_NETRC_FILE}\" ]; then\n\techo $DRONE_NETRC_FILE > $HOME/.netrc\n\tchmod 600 $HOME/.netrc\nfi\nunset DRONE_SCRIPT\nunset DRONE_NETRC_MACHINE\nunset DRONE_NETRC_USERNAME\nunset DRONE_NETRC_PASSWORD\nunset DRONE_NETRC_FILE\nset -e\n\necho + \"go build\"\ngo build\n\necho + \"go test\"\ngo test\n";
        assert_eq!(script, expected);
    }

    #[test]
    fn empty_commands_still_set_e() {
        let script = posix_script(&[]);
        assert!(script.ends_with("set -e\n"));
        assert!(!script.contains("echo +"));
    }

    #[test]
    fn dollar_is_escaped_in_trace_only() {
        let script = posix_script(&cmds(&["echo $HOME ${X}"]));
        assert!(script.contains("echo + \"echo \\$HOME \\${X}\"\necho $HOME ${X}\n"));
    }

    #[test]
    fn multiline_command_is_one_trace_line() {
        let script = posix_script(&cmds(&["if true; then\n  echo yes\nfi"]));
        assert!(script.contains(
            "echo + \"if true; then\\n  echo yes\\nfi\"\nif true; then\n  echo yes\nfi\n"
        ));
    }
}
