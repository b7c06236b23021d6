//! The `leadhook` command: serve (default), migrate, simulate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use leadhook::config::Config;
use leadhook::loadtest;
use leadhook::simulate::{self, SimulateArgs};
use leadhook::startup::{self, Application};

#[derive(Parser)]
#[command(name = "leadhook", version, about = "WhatsApp webhooks in, leads out")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the webhook and admin API (the default).
    Serve,
    /// Apply database migrations and exit (the Procfile's release step).
    Migrate,
    /// Send a correctly signed sample WhatsApp message to a running server.
    Simulate(SimulateArgs),
    /// Load a running server with signed webhooks; check every 200 was stored.
    Loadtest(loadtest::LoadtestArgs),
    /// Fill the configured database with realistic leads and messages.
    Seed(loadtest::seed::SeedArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; a broken one is reported below by whatever
    // variable it failed to set.
    let _ = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Loadtest(args) => loadtest::run(args).await,
        Command::Seed(args) => loadtest::seed::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadhook: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    log::info!("stopped");
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tokio::task::spawn_blocking(move || startup::open_database(&config)).await??;
    log::info!("migrations are up to date");
    Ok(())
}
