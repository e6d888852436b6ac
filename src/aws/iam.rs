//! [`AwsIam`]: the [`Iam`] seam over aws-sdk-iam.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::types::StatusType;
use aws_smithy_types::date_time::Format;

use super::error::iam_error;
use super::{AwsOptions, RETRY_BUDGET, RETRY_REFILL_PER_SECOND};
use crate::iam::{
    AccessKeyInfo, Iam, IamError, IamErrorKind, KeyLastUsed, KeyStatus, NewAccessKey,
};
use crate::secret::SecretAccessKey;

/// [`Iam`] backed by aws-sdk-iam. Clones share one client, so when a user
/// rotating its own key switches to the new key ([`Iam::sign_with`]), the
/// journal and the rotation both sign with it.
#[derive(Clone, Debug)]
pub struct AwsIam {
    client: Arc<RwLock<aws_sdk_iam::Client>>,
}

impl AwsIam {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Self {
            client: Arc::new(RwLock::new(client)),
        }
    }

    /// The client to make a call with now.
    fn client(&self) -> aws_sdk_iam::Client {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Builds a client from an SDK config, with its own retry budget.
    ///
    /// The SDK gates retries with a token bucket shared, by default, by
    /// every IAM client in the process: a fleet run's throttling across
    /// accounts would drain it and turn later throttles into failures. Each
    /// client (one per account or target) gets its own, larger bucket that
    /// refills over time, so a burst is waited out and a storm still ends.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        use aws_sdk_iam::config::retry::{RetryPartition, TokenBucket};
        let budget = TokenBucket::builder()
            .capacity(RETRY_BUDGET)
            .refill_rate(RETRY_REFILL_PER_SECOND)
            .build();
        let conf = aws_sdk_iam::config::Builder::from(config)
            .retry_partition(
                RetryPartition::custom("keyrot-iam")
                    .token_bucket(budget)
                    .build(),
            )
            .build();
        Self::new(aws_sdk_iam::Client::from_conf(conf))
    }

    /// Builds a client from [`AwsOptions`].
    pub async fn from_options(options: &AwsOptions) -> Self {
        Self::from_config(&options.load().await)
    }
}

#[async_trait]
impl Iam for AwsIam {
    async fn sign_with(&self, key: &NewAccessKey) -> bool {
        let credentials = super::credentials_of(key);
        let conf = self
            .client()
            .config()
            .to_builder()
            .credentials_provider(credentials)
            .build();
        *self.client.write().unwrap_or_else(|e| e.into_inner()) =
            aws_sdk_iam::Client::from_conf(conf);
        true
    }

    /// Every IAM user whose path starts with `path_prefix` (`/` for all),
    /// across all pages of `ListUsers`, sorted by name.
    async fn list_users(&self, path_prefix: &str) -> Result<Vec<String>, IamError> {
        let users: Vec<_> = self
            .client()
            .list_users()
            .path_prefix(path_prefix)
            .max_items(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        let mut names: Vec<String> = users.iter().map(|u| u.user_name().to_string()).collect();
        names.sort();
        Ok(names)
    }

    async fn group_members(&self, group: &str) -> Result<Vec<String>, IamError> {
        let users: Vec<_> = self
            .client()
            .get_group()
            .group_name(group)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        Ok(users.iter().map(|u| u.user_name().to_string()).collect())
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, IamError> {
        let keys: Vec<_> = self
            .client()
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        Ok(keys
            .into_iter()
            .map(|key| AccessKeyInfo {
                access_key_id: key.access_key_id().unwrap_or_default().to_string(),
                status: key_status(key.status()),
                create_date: key.create_date().and_then(|d| d.fmt(Format::DateTime).ok()),
            })
            .collect())
    }

    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        // Not idempotent: a retry after a lost answer would make a second
        // key. Fail instead; the rotation retries only what IAM definitely
        // refused (throttling) and looks at what IAM holds otherwise.
        let once = aws_sdk_iam::config::Builder::default().retry_config(RetryConfig::disabled());
        let output = self
            .client()
            .create_access_key()
            .user_name(user)
            .customize()
            .config_override(once)
            .send()
            .await
            .map_err(iam_error)?;
        let key = output.access_key().ok_or_else(|| {
            IamError::new(IamErrorKind::NoAnswer, "CreateAccessKey returned no key")
        })?;
        Ok(NewAccessKey {
            user_name: key.user_name().to_string(),
            access_key_id: key.access_key_id().to_string(),
            secret_access_key: SecretAccessKey::new(key.secret_access_key()),
            create_date: key
                .create_date()
                .and_then(|d| d.fmt(Format::DateTime).ok())
                .unwrap_or_default(),
        })
    }

    async fn update_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        self.client()
            .update_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .status(StatusType::from(status.as_str()))
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        self.client()
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }

    async fn access_key_last_used(&self, key_id: &str) -> Result<KeyLastUsed, IamError> {
        let out = self
            .client()
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(iam_error)?;
        let used = out.access_key_last_used();
        let known = |s: Option<&str>| s.filter(|s| *s != "N/A").map(str::to_string);
        Ok(KeyLastUsed {
            date: used
                .and_then(|u| u.last_used_date())
                .and_then(|d| d.fmt(Format::DateTime).ok()),
            service: known(used.map(|u| u.service_name())),
            region: known(used.map(|u| u.region())),
        })
    }

    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, IamError> {
        let tags: Vec<_> = self
            .client()
            .list_user_tags()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        Ok(tags
            .into_iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), IamError> {
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| IamError::new(IamErrorKind::Other, e.to_string()))?;
        self.client()
            .tag_user()
            .user_name(user)
            .tags(tag)
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }

    async fn untag_user(&self, user: &str, key: &str) -> Result<(), IamError> {
        self.client()
            .untag_user()
            .user_name(user)
            .tag_keys(key)
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }
}

fn key_status(status: Option<&StatusType>) -> KeyStatus {
    match status {
        Some(StatusType::Active) => KeyStatus::Active,
        Some(StatusType::Inactive) => KeyStatus::Inactive,
        // `Expired` and statuses this SDK does not know yet cannot sign
        // requests as far as keyrot can tell: treat them as not active.
        _ => KeyStatus::Expired,
    }
}
