//! A tiny `--flag value` parser: the helper has few options and no need for clap.

use anyhow::{bail, Context, Result};
use std::str::FromStr;

/// Flags (`--name value`, repeatable) and positional arguments, in order.
pub struct Args {
    flags: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Args {
    /// Splits `words` into `--name value` pairs and positional arguments.
    pub fn parse(words: Vec<String>) -> Result<Self> {
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        let mut words = words.into_iter();
        while let Some(word) = words.next() {
            if let Some(name) = word.strip_prefix("--") {
                let Some(value) = words.next() else {
                    bail!("--{name}: missing value");
                };
                flags.push((name.to_string(), value));
            } else {
                positional.push(word);
            }
        }
        Ok(Self { flags, positional })
    }

    /// Every value given for `--name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The last value of `--name` parsed as `T`, or `default`.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.all(name).last() {
            Some(text) => text
                .parse()
                .with_context(|| format!("--{name}: invalid value '{text}'")),
            None => Ok(default),
        }
    }

    /// The last value of `--name`, which must be given.
    pub fn required(&self, name: &str) -> Result<&str> {
        self.all(name)
            .last()
            .copied()
            .with_context(|| format!("--{name} is required"))
    }

    /// The `index`th positional argument.
    pub fn positional(&self, index: usize) -> Option<&str> {
        self.positional.get(index).map(String::as_str)
    }
}
