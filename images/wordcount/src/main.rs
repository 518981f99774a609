//! Counts words: `{"text": "..."}` gives the total and the ten most frequent
//! words (lower-cased), ties broken alphabetically.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use mayfly_kernel::{Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Request {
    text: String,
}

#[derive(Serialize, Debug, PartialEq)]
struct WordCount {
    word: String,
    count: u64,
}

#[derive(Serialize)]
struct Reply {
    total: u64,
    top: Vec<WordCount>,
}

const TOP: usize = 10;

fn handler(event: Request, _ctx: &Context) -> Result<Reply, Error> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0;
    for word in event
        .text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
    {
        let word = word.trim_matches('\'');
        if word.is_empty() {
            continue;
        }
        total += 1;
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    let mut ranked: Vec<WordCount> = counts
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    // BTreeMap order is alphabetical already; a stable sort by count keeps it
    // for ties.
    ranked.sort_by_key(|w| Reverse(w.count));
    ranked.truncate(TOP);
    Ok(Reply { total, top: ranked })
}

mayfly_kernel::entry!(handler);
