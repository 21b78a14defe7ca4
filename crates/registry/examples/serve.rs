//! A bare registry server for benchmarks: the same `skiff_registry::serve` that
//! `skiff registry serve` runs, without the rest of the skiff binary (so the benchmark builds
//! even while other crates of the workspace are mid-change).
//! Usage: `serve ADDR DATA_DIR`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let data_dir = args.next().unwrap_or_else(|| "skiff-data".into());
    let config = skiff_registry::Config {
        data_dir: data_dir.into(),
        s3: None,
        admin_password: std::env::var("SKIFF_ADMIN_PASSWORD").ok(),
        verifier: None,
        public: Vec::new(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("registry listening on http://{}", listener.local_addr()?);
        skiff_registry::serve(&config, listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}
