//! A setting that cannot work, named: what the endpoint's own checks
//! return, and what [`crate::Error::InvalidSetting`] carries.

use std::fmt;

/// A setting that cannot work or would be unsafe: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting, by its name in the settings (`port`, `timeouts.idle`,
    /// `roots`) or on the command line.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SettingError {
    /// `setting` cannot work because of `problem`.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for SettingError {}
