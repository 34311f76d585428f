//! Progress bars for long work (replay, fills, benches), drawn on stderr only when it is a
//! terminal.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `total` units of `what`.
pub fn bar(total: u64, what: &str) -> Result<ProgressBar> {
    let template = format!(
        "{{spinner}} {what} [{{bar:40}}] {{human_pos}}/{{human_len}}, {{per_sec}}, eta {{eta}}"
    );
    Ok(ProgressBar::new(total)
        .with_style(ProgressStyle::with_template(&template)?.progress_chars("=> ")))
}
