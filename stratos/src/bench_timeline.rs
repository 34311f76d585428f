//! `stratos bench timeline`: the cost of a viewer's timeline page in the AppView views as the
//! views grow. It fills a scratch copy of the views (a fresh Postgres schema or SQLite file)
//! with synthetic posts spread over many boundaries, then asks for the first page and deeper
//! pages of viewers who hold a handful of those boundaries.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use rand::Rng;
use stratos_store::{FeedCursor, PostRow, RebuildTarget, Views};

/// Arguments of `stratos bench timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// `postgres://…` (a scratch schema is created and dropped) or `sqlite://…` (a scratch file
    /// beside it).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Posts in the views.
    #[arg(long, default_value_t = 1_000_000)]
    posts: usize,
    /// Boundaries the posts are spread over (one each).
    #[arg(long, default_value_t = 10_000)]
    boundaries: usize,
    /// Boundaries each viewer holds.
    #[arg(long, default_value_t = 20)]
    viewer_boundaries: usize,
    /// Timeline pages asked for.
    #[arg(long, default_value_t = 2_000)]
    pages: usize,
    /// Posts per page.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Ask for pages right after filling, without vacuuming and analysing the views first.
    #[arg(long)]
    skip_vacuum: bool,
}

/// Posts written per transaction while filling.
const FILL_BATCH: usize = 5_000;

/// Runs the bench.
pub async fn bench_timeline(args: TimelineArgs) -> Result<()> {
    let scratch = RebuildTarget::prepare(&args.database_url, "bench_timeline").await?;
    let views = Views::connect(scratch.url()).await?;
    let outcome = run(&args, &views).await;
    views.close().await;
    scratch.discard().await?;
    outcome
}

async fn run(args: &TimelineArgs, views: &Views) -> Result<()> {
    let boundary = |n: usize| format!("did:web:bench.example/b{n:05}");
    let bar = crate::progress::bar(args.posts as u64, "filling the views")?;
    let mut rng = rand::thread_rng();
    let base = 1_700_000_000_000_000_i64;
    let mut written = 0;
    while written < args.posts {
        let batch = (args.posts - written).min(FILL_BATCH);
        let mut posts = Vec::with_capacity(batch);
        for i in written..written + batch {
            let at =
                stratos_schema::syntax::Datetime::from_timestamp_micros(base + i as i64 * 1_000)
                    .map(|t| t.into_string())
                    .unwrap_or_default();
            let creator = format!("did:plc:author{:06}", i % 50_000);
            let rkey = format!("3k{i:011}");
            let post = PostRow {
                uri: format!("at://{creator}/zone.stratos.feed.post/{rkey}"),
                cid: "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".into(),
                rkey,
                creator,
                text: "a synthetic post".into(),
                reply_root: None,
                reply_root_cid: None,
                reply_parent: None,
                reply_parent_cid: None,
                embed: None,
                facets: None,
                labels: None,
                langs: None,
                tags: None,
                created_at: at.clone(),
                indexed_at: at,
            };
            posts.push((post, [boundary(rng.gen_range(0..args.boundaries))]));
        }
        let rows: Vec<(&PostRow, &[String])> = posts
            .iter()
            .map(|(post, boundaries)| (post, boundaries.as_slice()))
            .collect();
        let mut tx = views.begin().await?;
        tx.upsert_posts(&rows).await?;
        tx.commit().await?;
        written += batch;
        bar.inc(batch as u64);
    }
    bar.finish_and_clear();
    if !args.skip_vacuum {
        // What autovacuum does to a live table; a bulk-filled one lacks the visibility map that
        // index-only scans need.
        views.vacuum().await?;
    }

    let mut first = Vec::with_capacity(args.pages);
    let mut deeper = Vec::with_capacity(args.pages);
    let progress = crate::progress::bar(args.pages as u64, "asking for pages")?;
    for _ in 0..args.pages {
        let held: Vec<String> = (0..args.viewer_boundaries)
            .map(|_| boundary(rng.gen_range(0..args.boundaries)))
            .collect();
        let started = Instant::now();
        let page = views.timeline_page(None, &held, None, args.limit).await?;
        first.push(started.elapsed());
        if let Some(last) = page.last() {
            let cursor: FeedCursor = last.cursor();
            let started = Instant::now();
            views
                .timeline_page(None, &held, Some(&cursor), args.limit)
                .await?;
            deeper.push(started.elapsed());
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "timeline page", "p50", "p99", "max"
    );
    for (name, latencies) in [("first page", first), ("second page (cursor)", deeper)] {
        print_row(name, latencies);
    }
    println!(
        "({} posts in {} boundaries, viewers in {} boundaries, {} posts per page, {})",
        args.posts,
        args.boundaries,
        args.viewer_boundaries,
        args.limit,
        match args.skip_vacuum {
            true => "not vacuumed",
            false => "vacuumed and analysed",
        }
    );
    Ok(())
}

fn print_row(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let quantile = |q: f64| crate::bench_service::quantile(&latencies, q);
    println!(
        "{name:<28} {:>10.2?} {:>10.2?} {:>10.2?}",
        quantile(0.5),
        quantile(0.99),
        latencies.last().copied().unwrap_or_default()
    );
}
