//! A fault-injecting fake of the [`keyrot::Iam`] seam and a scriptable
//! [`keyrot::NewKeyHandler`], for the failure edges real IAM (or moto) cannot
//! be made to produce on demand.
//!
//! [`FakeIam`] keeps real IAM's rules (unknown user, two keys per user,
//! missing key) so a scenario injects only the fault it is about, and it
//! records every call so a test can assert what keyrot did *not* do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use keyrot::{
    AccessKeyInfo, HandlerError, HandlerLog, Iam, IamError, IamErrorKind, KeyStatus, LogLevel,
    LogLine, NewAccessKey, NewKeyHandler, RetryPolicy, Rotation, SecretAccessKey,
};

/// IAM's fixed limit on access keys per user.
const KEYS_PER_USER: usize = 2;

/// A retry policy that keeps the retry paths but costs milliseconds.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        deadline: Duration::from_secs(5),
    }
}

/// An IAM operation, for fault injection and the call log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    List,
    Create,
    Update,
    Delete,
    ListUsers,
}

/// How many matching calls a fault fails.
#[derive(Clone, Copy, Debug)]
pub enum Times {
    /// The next `n`, then calls succeed again ("transient, then fine").
    N(u32),
    /// Every one.
    Always,
}

/// One injected failure.
#[derive(Clone, Debug)]
pub struct Fault {
    op: Op,
    key_id: Option<String>,
    skip: u32,
    times: Times,
    error: IamError,
    applied: bool,
}

impl Fault {
    /// Fails every `op` call with `error`.
    pub fn new(op: Op, error: IamError) -> Self {
        Self {
            op,
            key_id: None,
            skip: 0,
            times: Times::Always,
            error,
            applied: false,
        }
    }

    /// Only calls on this key id.
    pub fn key(mut self, key_id: &str) -> Self {
        self.key_id = Some(key_id.to_string());
        self
    }

    /// Lets the first `n` matching calls through: the (n+1)th is the first to fail.
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// How many matching calls fail.
    pub fn times(mut self, times: Times) -> Self {
        self.times = times;
        self
    }

    /// The call takes effect but the caller still sees the error: a lost
    /// response, or an eventually consistent retry of a call that worked.
    pub fn applied(mut self) -> Self {
        self.applied = true;
        self
    }

    fn matches(&self, op: Op, key_id: Option<&str>) -> bool {
        let exhausted = matches!(self.times, Times::N(0));
        !exhausted && self.op == op && (self.key_id.is_none() || self.key_id.as_deref() == key_id)
    }
}

/// One call keyrot made, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    /// The key the call named (none for list and create).
    pub key_id: Option<String>,
    pub ok: bool,
}

struct Key {
    id: String,
    status: KeyStatus,
    secret: String,
    create_date: String,
}

#[derive(Default)]
struct Table {
    users: BTreeMap<String, Vec<Key>>,
    created: u32,
    /// Every secret ever issued, so tests can prove none leaked.
    secrets: Vec<String>,
}

impl Table {
    fn user(&mut self, user: &str) -> Result<&mut Vec<Key>, IamError> {
        self.users.get_mut(user).ok_or_else(|| {
            IamError::new(
                IamErrorKind::NoSuchEntity,
                format!("NoSuchEntity: The user with name {user} cannot be found."),
            )
        })
    }

    fn key(&mut self, user: &str, key_id: &str) -> Result<&mut Key, IamError> {
        self.user(user)?
            .iter_mut()
            .find(|k| k.id == key_id)
            .ok_or_else(|| missing_key(key_id))
    }

    fn new_key(&mut self, status: KeyStatus) -> Key {
        self.created += 1;
        let n = self.created;
        let key = Key {
            id: key_id(n),
            status,
            secret: format!("wJalr/{n:06}/{}", "K".repeat(27)),
            create_date: format!("2024-05-01T{:02}:{:02}:00Z", n / 60 % 24, n % 60),
        };
        self.secrets.push(key.secret.clone());
        key
    }
}

/// `AKIA` and 16 uppercase alphanumerics, unique per counter value, with
/// distinct last four characters so masked ids (`AKIA…0001`) differ.
fn key_id(n: u32) -> String {
    format!("AKIAFAKE{n:012}")
}

fn missing_key(key_id: &str) -> IamError {
    IamError::new(
        IamErrorKind::NoSuchEntity,
        format!("NoSuchEntity: The Access Key with id {key_id} cannot be found."),
    )
}

#[derive(Default)]
struct State {
    table: Table,
    faults: Vec<Fault>,
    calls: Vec<Call>,
    /// Keys another actor deletes right after keyrot's nth list from now:
    /// (key, lists still to go).
    vanish_after_list: Vec<(String, u32)>,
    /// The same, just before the nth list.
    vanish_before_list: Vec<(String, u32)>,
    /// Users whose key listing panics: a bug in the middle of a rotation.
    panic_on_list: Vec<String>,
}

impl State {
    /// The fault this call trips, if any, counting it against the fault.
    fn trip(&mut self, op: Op, key_id: Option<&str>) -> Option<(IamError, bool)> {
        let fault = self.faults.iter_mut().find(|f| f.matches(op, key_id))?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        if let Times::N(n) = &mut fault.times {
            *n -= 1;
        }
        Some((fault.error.clone(), fault.applied))
    }
}

/// An in-memory IAM with real IAM's rules, injected faults and a call log.
#[derive(Default)]
pub struct FakeIam {
    state: Mutex<State>,
}

impl FakeIam {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A failed assertion elsewhere must not hide behind a poisoned lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add_user(&self, name: &str) {
        self.lock().table.users.entry(name.to_string()).or_default();
    }

    /// Gives `user` a key, ignoring the two-key limit (setup, not an IAM call).
    pub fn add_key(&self, user: &str, status: KeyStatus) -> String {
        let mut state = self.lock();
        let key = state.table.new_key(status);
        let id = key.id.clone();
        state.table.user(user).expect("add_user first").push(key);
        id
    }

    /// The user's keys now (empty for an unknown user).
    pub fn keys(&self, user: &str) -> Vec<(String, KeyStatus)> {
        let state = self.lock();
        let keys = state.table.users.get(user).map(Vec::as_slice);
        keys.unwrap_or_default()
            .iter()
            .map(|k| (k.id.clone(), k.status.clone()))
            .collect()
    }

    pub fn active_keys(&self, user: &str) -> Vec<String> {
        self.keys(user)
            .into_iter()
            .filter(|(_, status)| *status == KeyStatus::Active)
            .map(|(id, _)| id)
            .collect()
    }

    pub fn status(&self, user: &str, key_id: &str) -> Option<KeyStatus> {
        let keys = self.keys(user);
        keys.into_iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, status)| status)
    }

    /// The secret issued with `key_id`, as long as the key exists.
    pub fn secret_of(&self, key_id: &str) -> Option<String> {
        let state = self.lock();
        let mut keys = state.table.users.values().flatten();
        keys.find(|k| k.id == key_id).map(|k| k.secret.clone())
    }

    /// Every secret the fake ever issued, deleted keys included.
    pub fn secrets(&self) -> Vec<String> {
        self.lock().table.secrets.clone()
    }

    /// The id the next created key will get, to aim a fault at it.
    pub fn next_key_id(&self) -> String {
        key_id(self.lock().table.created + 1)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Fails `op` (on `key_id` only, if given) with `kind`, `times` times.
    pub fn fail(&self, op: Op, key_id: Option<&str>, kind: IamErrorKind, times: Times) {
        let message = format!("{kind:?}: injected failure of {op:?}");
        let mut fault = Fault::new(op, IamError::new(kind, message)).times(times);
        if let Some(id) = key_id {
            fault = fault.key(id);
        }
        self.inject(fault);
    }

    /// Another actor deletes `key_id` just after keyrot's next list: keyrot
    /// acts on a key that is already gone.
    pub fn vanish_after_list(&self, key_id: &str) {
        self.lock().vanish_after_list.push((key_id.to_string(), 1));
    }

    /// Listing `user`'s keys panics, as a bug would.
    pub fn panic_on_list(&self, user: &str) {
        self.lock().panic_on_list.push(user.to_string());
    }

    /// Another actor deletes `key_id` just before keyrot's `n`th list from
    /// now (the key may not exist yet: keyrot's own new key, say).
    pub fn vanish_before_list(&self, key_id: &str, n: u32) {
        self.lock().vanish_before_list.push((key_id.to_string(), n));
    }

    /// Runs one IAM call: an injected fault wins, else `apply` decides. Logs it.
    fn call<T>(
        &self,
        op: Op,
        key_id: Option<&str>,
        apply: impl FnOnce(&mut Table) -> Result<T, IamError>,
    ) -> Result<T, IamError> {
        let mut state = self.lock();
        let result = match state.trip(op, key_id) {
            Some((error, applied)) => {
                if applied {
                    let _ = apply(&mut state.table);
                }
                Err(error)
            }
            None => apply(&mut state.table),
        };
        state.calls.push(Call {
            op,
            key_id: key_id.map(str::to_string),
            ok: result.is_ok(),
        });
        result
    }
}

#[async_trait]
impl Iam for FakeIam {
    async fn list_users(&self, path_prefix: &str) -> Result<Vec<String>, IamError> {
        // Every fake user lives at path `/`.
        self.call(Op::ListUsers, None, |table| {
            Ok(if path_prefix == "/" {
                table.users.keys().cloned().collect()
            } else {
                Vec::new()
            })
        })
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, IamError> {
        if self.lock().panic_on_list.iter().any(|u| u == user) {
            panic!("injected panic while listing the keys of {user}");
        }
        {
            let mut state = self.lock();
            let vanish = due(&mut state.vanish_before_list);
            if let Some(keys) = state.table.users.get_mut(user) {
                keys.retain(|k| !vanish.contains(&k.id));
            }
        }
        let listed = self.call(Op::List, None, |table| {
            let keys = table.user(user)?.iter().map(|k| AccessKeyInfo {
                access_key_id: k.id.clone(),
                status: k.status.clone(),
                create_date: Some(k.create_date.clone()),
            });
            Ok(keys.collect())
        });
        if listed.is_ok() {
            let mut state = self.lock();
            let vanish = due(&mut state.vanish_after_list);
            if let Some(keys) = state.table.users.get_mut(user) {
                keys.retain(|k| !vanish.contains(&k.id));
            }
        }
        listed
    }

    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        self.call(Op::Create, None, |table| {
            if table.user(user)?.len() >= KEYS_PER_USER {
                return Err(IamError::new(
                    IamErrorKind::LimitExceeded,
                    "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2",
                ));
            }
            let key = table.new_key(KeyStatus::Active);
            let created = NewAccessKey {
                user_name: user.to_string(),
                access_key_id: key.id.clone(),
                secret_access_key: SecretAccessKey::new(key.secret.clone()),
                create_date: key.create_date.clone(),
            };
            table.user(user)?.push(key);
            Ok(created)
        })
    }

    async fn update_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        self.call(Op::Update, Some(key_id), |table| {
            table.key(user, key_id)?.status = status;
            Ok(())
        })
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        self.call(Op::Delete, Some(key_id), |table| {
            let keys = table.user(user)?;
            let index = keys.iter().position(|k| k.id == key_id);
            keys.remove(index.ok_or_else(|| missing_key(key_id))?);
            Ok(())
        })
    }
}

/// What the handler was asked to do.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub preflight_calls: u32,
    pub handle_calls: u32,
    /// The rotation given to the last call.
    pub rotation: Option<Rotation>,
    /// The key id given to `handle`.
    pub key_id: Option<String>,
    /// Whether that key was active in IAM while `handle` ran.
    pub key_was_active: bool,
    /// Whether the secret given matched the one IAM issued for that key.
    pub secret_matched: bool,
}

/// A handler whose preflight and handle results are set by the test, and
/// which checks what it is given against the fake IAM.
pub struct FakeHandler {
    iam: Arc<FakeIam>,
    preflight: Result<(), HandlerError>,
    handle: Result<(), HandlerError>,
    seen: Mutex<Seen>,
}

impl FakeHandler {
    /// A handler that accepts every key.
    pub fn new(iam: Arc<FakeIam>) -> Self {
        Self {
            iam,
            preflight: Ok(()),
            handle: Ok(()),
            seen: Mutex::default(),
        }
    }

    pub fn with_preflight(mut self, result: Result<(), HandlerError>) -> Self {
        self.preflight = result;
        self
    }

    pub fn with_handle(mut self, result: Result<(), HandlerError>) -> Self {
        self.handle = result;
        self
    }

    pub fn seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, update: impl FnOnce(&mut Seen)) {
        update(&mut self.seen.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

#[async_trait]
impl NewKeyHandler for FakeHandler {
    async fn preflight(&self, rotation: &Rotation, _log: &HandlerLog) -> Result<(), HandlerError> {
        self.record(|seen| {
            seen.preflight_calls += 1;
            seen.rotation = Some(rotation.clone());
        });
        self.preflight.clone()
    }

    async fn handle(
        &self,
        rotation: &Rotation,
        key: &NewAccessKey,
        log: &HandlerLog,
    ) -> Result<(), HandlerError> {
        let id = &key.access_key_id;
        // Checked now, not after the run: keyrot may delete the key later.
        let active = self.iam.status(&key.user_name, id) == Some(KeyStatus::Active);
        let secret = self.iam.secret_of(id);
        self.record(|seen| {
            seen.handle_calls += 1;
            seen.rotation = Some(rotation.clone());
            seen.key_id = Some(id.clone());
            seen.key_was_active = active;
            seen.secret_matched = secret.as_deref() == Some(key.secret_access_key.expose());
        });
        log.extend([LogLine {
            level: LogLevel::Info,
            context: "fake".to_string(),
            message: format!("storing {id}"),
        }]);
        self.handle.clone()
    }
}

/// Counts one list against each pending vanishing; returns the keys due now.
fn due(pending: &mut Vec<(String, u32)>) -> Vec<String> {
    let mut due = Vec::new();
    pending.retain_mut(|(id, lists)| {
        *lists -= 1;
        if *lists == 0 {
            due.push(id.clone());
        }
        *lists > 0
    });
    due
}
