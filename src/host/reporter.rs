//! A `keyrot:reporter` plugin as a [`Notifier`]: loaded, checked and
//! described exactly as a handler is (same capabilities, same limits, a
//! fresh store per call), then called once per run with the run's notice.

use async_trait::async_trait;

use super::call::guarded;
use super::plugin::Linked;
use super::{Loaded, Plugin, PluginError, PluginInfo, PluginKind, Sandbox};
use crate::handler::{HandlerError, HandlerLog};
use crate::notify::{Notifier, RunNotice};

/// A reporter plugin checked against its sandbox, ready to report.
pub struct WasmReporter {
    inner: Loaded,
}

impl WasmReporter {
    /// Checks the plugin against its sandbox (its kind, its imports against
    /// the grants, then what `describe()` says against the settings),
    /// before any key exists. A handler given as a reporter is refused.
    pub async fn new(plugin: Plugin, sandbox: Sandbox) -> Result<Self, PluginError> {
        Ok(Self {
            inner: Loaded::new(plugin, sandbox, PluginKind::Reporter).await?,
        })
    }

    /// The plugin's name (from `describe`, else the file name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the plugin said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }
}

#[async_trait]
impl Notifier for WasmReporter {
    async fn notify(&self, run: &RunNotice, log: &HandlerLog) -> Result<(), HandlerError> {
        let Linked::Reporter(reporter) = &self.inner.plugin.linked else {
            unreachable!("Loaded::new checked the kind");
        };
        let inner = &self.inner;
        // The notice holds no secret; the settings' secrets are scrubbed
        // from what the reporter says, as for a handler.
        let secrets = inner.secrets(None);
        let mut call = inner.start(&inner.sandbox, &secrets)?;
        let ran = guarded(&inner.sandbox.limits, reporter.report(call.store(), run)).await;
        call.finish(ran, log)
    }
}
