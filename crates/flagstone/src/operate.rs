//! Operating the queue from the shell: `flagstone status` (health checks, the queue, stale
//! environments) and `flagstone tasks list|retry|discard`. Each prints a table (coloured on a
//! terminal, plain when piped) or, with `--json`, JSON for scripts. The health decision is the
//! same one `/health/status` makes (`flagstone_observe::health`).

use flagstone_observe::health::{decide, HealthInputs, HealthReport, Status};
use flagstone_store::queue::{self, JobState, PublishJob, QueueStatus};
use flagstone_store::{Actor, PageRequest};

use crate::db_args::DbArgs;
use crate::observability::HealthThresholdArgs;
use crate::table::{colour_stdout, truncate, Cell, Table, Tone};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub health: HealthThresholdArgs,
    /// Print JSON instead of tables: the queue's status with its `health` report.
    #[arg(long)]
    pub json: bool,
}

fn status_tone(s: Status) -> Tone {
    match s {
        Status::Ok => Tone::Good,
        Status::Degraded => Tone::Bad,
    }
}

fn state_tone(s: JobState) -> Tone {
    match s {
        JobState::Pending => Tone::Warn,
        JobState::Running => Tone::Plain,
        JobState::Parked => Tone::Bad,
    }
}

fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// The health checks as a table.
pub fn checks_table(report: &HealthReport) -> Table {
    let mut t = Table::new(&["CHECK", "STATUS", "VALUE", "THRESHOLD", "DETAIL"]);
    for c in &report.checks {
        let name = serde_json::to_value(c.name)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let status = serde_json::to_value(c.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        t.row(vec![
            name.into(),
            Cell::new(status, status_tone(c.status)),
            c.value.to_string().into(),
            c.threshold.to_string().into(),
            truncate(&c.message, 90).into(),
        ]);
    }
    t
}

/// Environments behind their revision as a table (parked first, as the store lists them).
pub fn stale_table(s: &QueueStatus, now_ms: i64) -> Table {
    let mut t = Table::new(&[
        "ENV",
        "NAME",
        "REVISION",
        "SERVING",
        "JOB",
        "REASON",
        "WAITING",
        "ATTEMPTS",
        "LAST ERROR",
    ]);
    for e in &s.stale {
        let job = match e.job_state {
            Some(state) => Cell::new(state.as_str(), state_tone(state)),
            None => Cell::new("none (reconcile)", Tone::Warn),
        };
        t.row(vec![
            e.environment_id.to_string().into(),
            truncate(&e.name, 24).into(),
            e.revision.to_string().into(),
            e.published_revision
                .map(|r| r.to_string())
                .unwrap_or_else(|| "nothing".into())
                .into(),
            job,
            e.park_reason.map(|r| r.as_str()).unwrap_or("").into(),
            e.waiting_since
                .map(|w| age(now_ms - w))
                .unwrap_or_default()
                .into(),
            e.attempts.map(|a| a.to_string()).unwrap_or_default().into(),
            truncate(e.last_error.as_deref().unwrap_or(""), 60).into(),
        ]);
    }
    t
}

/// Publish jobs as a table.
pub fn jobs_table(jobs: &[PublishJob], now_ms: i64) -> Table {
    let mut t = Table::new(&[
        "TASK",
        "STATE",
        "WANTED",
        "SERVING",
        "ATTEMPTS",
        "DUE/LEASE",
        "REASON",
        "LAST ERROR",
    ]);
    for j in jobs {
        let timing = match j.state {
            JobState::Pending if j.run_after > now_ms => {
                format!("in {}", age(j.run_after - now_ms))
            }
            JobState::Pending => "due".to_string(),
            JobState::Running => format!(
                "{} until {}",
                j.lease_owner.as_deref().unwrap_or("?"),
                j.lease_until
                    .map(|u| format!("+{}", age(u - now_ms)))
                    .unwrap_or_default()
            ),
            JobState::Parked => format!("parked {} ago", age(now_ms - j.updated_at)),
        };
        t.row(vec![
            j.environment_id.to_string().into(),
            Cell::new(j.state.as_str(), state_tone(j.state)),
            j.wanted_revision.to_string().into(),
            j.published_revision
                .map(|r| r.to_string())
                .unwrap_or_else(|| "nothing".into())
                .into(),
            j.attempts.to_string().into(),
            timing.into(),
            j.park_reason.map(|r| r.as_str()).unwrap_or("").into(),
            truncate(j.last_error.as_deref().unwrap_or(""), 60).into(),
        ]);
    }
    t
}

/// `flagstone status`: health, the queue at a glance, and the environments behind.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let now = store.clock().now_ms();
    let mut tx = store.read().await?;
    let s = queue::status(&mut tx, now).await?;
    let parked = queue::jobs(&mut tx, Some(JobState::Parked), PageRequest::new(1, 100)).await?;
    drop(tx);
    let report = decide(
        &HealthInputs::from_queue(&s, &parked.results, now),
        &args.health.thresholds(),
    );
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        v["health"] = serde_json::to_value(&report)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let colour = colour_stdout();
    let word = match report.status {
        Status::Ok => "ok",
        Status::Degraded => "degraded",
    };
    let word = if colour {
        format!(
            "\u{1b}[{}m{word}\u{1b}[0m",
            if report.status == Status::Ok {
                "32"
            } else {
                "31;1"
            }
        )
    } else {
        word.to_string()
    };
    println!("health: {word}");
    println!(
        "publish queue: {} pending, {} running, {} parked; oldest pending request {}",
        s.pending,
        s.running,
        s.parked,
        s.oldest_pending_age_ms
            .map(|ms| format!("{} old", age(ms)))
            .unwrap_or_else(|| "none".into())
    );
    println!();
    print!("{}", checks_table(&report).render(colour));
    println!();
    if s.stale_environments == 0 {
        println!("every environment is published at its current revision");
    } else {
        println!(
            "environments behind their revision: {}{}",
            s.stale_environments,
            if s.stale.len() < s.stale_environments as usize {
                format!(" (first {} shown)", s.stale.len())
            } else {
                String::new()
            }
        );
        print!("{}", stale_table(&s, now).render(colour));
        if s.parked > 0 {
            println!(
                "\nfix the cause, then `flagstone tasks retry <ENV>` (or `tasks discard <ENV>`)"
            );
        }
    }
    Ok(())
}

/// A job state as a command-line value.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum StateArg {
    Pending,
    Running,
    Parked,
}

impl From<StateArg> for JobState {
    fn from(s: StateArg) -> JobState {
        match s {
            StateArg::Pending => JobState::Pending,
            StateArg::Running => JobState::Running,
            StateArg::Parked => JobState::Parked,
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum TasksCommand {
    /// List publish jobs (one per environment waiting to publish), parked first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON (`{"count", "results"}`) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Make a parked job due now, with fresh attempts.
    Retry {
        /// The environment id (the job's id).
        environment_id: i64,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Drop a parked job; the environment keeps its last published document until it changes.
    Discard {
        environment_id: i64,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `flagstone tasks list|retry|discard`.
pub async fn tasks(cmd: TasksCommand) -> anyhow::Result<()> {
    let actor = Actor::system("flagstone tasks (CLI)");
    let colour = colour_stdout();
    match cmd {
        TasksCommand::List {
            state,
            limit,
            json,
            db,
        } => {
            let store = db.open().await?;
            let mut tx = store.read().await?;
            let page = queue::jobs(
                &mut tx,
                state.map(JobState::from),
                PageRequest::new(1, limit.clamp(1, 10_000)),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else if page.results.is_empty() {
                println!("no publish jobs: every environment is published or has nothing to do");
            } else {
                print!(
                    "{}",
                    jobs_table(&page.results, store.clock().now_ms()).render(colour)
                );
                if page.count > page.results.len() as i64 {
                    println!("({} of {} shown; --limit)", page.results.len(), page.count);
                }
            }
        }
        TasksCommand::Retry {
            environment_id,
            json,
            db,
        } => {
            let store = db.open().await?;
            let job = queue::retry(&store, &actor, environment_id).await?;
            print_job(
                &job,
                json,
                store.clock().now_ms(),
                colour,
                "retried: due now",
            )?;
        }
        TasksCommand::Discard {
            environment_id,
            json,
            db,
        } => {
            let store = db.open().await?;
            let job = queue::discard(&store, &actor, environment_id).await?;
            print_job(
                &job,
                json,
                store.clock().now_ms(),
                colour,
                "discarded: the environment keeps serving its published document until it changes",
            )?;
        }
    }
    Ok(())
}

fn print_job(
    job: &PublishJob,
    json: bool,
    now: i64,
    colour: bool,
    what: &str,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(job)?);
    } else {
        println!("environment {}: {what}", job.environment_id);
        print!(
            "{}",
            jobs_table(std::slice::from_ref(job), now).render(colour)
        );
    }
    Ok(())
}
