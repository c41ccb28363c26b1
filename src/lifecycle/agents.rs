//! The two reinforcement-learning agents as a host engine uses them: one thread-safe handle,
//! [`RlAgents`], on the same store, clock and event sink as the [`Retrainer`](crate::Retrainer).
//!
//! Per signal the host asks [`RlAgents::choose_strategy`] for a style and
//! [`RlAgents::size_position`] for a size already clamped to the policy's limits; per closed
//! trade it calls [`RlAgents::record_strategy`] and [`RlAgents::record_sizing`]. Each record is
//! one Q-learning update and an `rl.*.updated` event. The handle keeps the tables' upkeep:
//! - every `rl.snapshot_every` updates the live table is stored as a new ACTIVE version (kinds
//!   `rl_meta` / `rl_sizing`; the store audits the registration, whose reason carries the
//!   updates and mean reward since the last snapshot) and states idle for
//!   `rl.prune_after_updates` updates are dropped (audited as `rl_pruned`);
//! - when the regime of the recorded trades has changed and held for `regime_sustain_days`,
//!   the table is archived as a RETIRED version, re-initialised with ε at
//!   `rl.learning.epsilon_start`, audited as `rl_reset` and announced as `rl.*.reset`;
//! - [`RlAgents::rollback`] makes a stored snapshot live again (only one that restores).
//!
//! Updates since the last snapshot live in memory: [`RlAgents::flush`] stores them (a host
//! calls it on shutdown). A reopened handle goes on from the ACTIVE tables, with the settings
//! they were learned under; the regime watch starts afresh.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::{Policy, RlPolicy};
use crate::error::Result;
use crate::lifecycle::events::{Event, EventKind, EventSink, RlReset, RlUpdate};
use crate::rl::meta_strategy::{MetaState, Regime, Strategy, meta_reward, upper};
use crate::rl::qtable::{Action, QAgent, QConfig, Transition};
use crate::rl::sizing::{SizedPosition, SizingAction, SizingContext, SizingState, clamp, sizing_reward};
use crate::rl::versions;
use crate::store::{AuditKind, Change, Status, VersionStore};

/// Which agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// The meta-strategy agent.
    Meta,
    /// The position-sizing agent.
    Sizing,
}

impl AgentKind {
    /// Its model id and version kind in the store (`rl_meta`, `rl_sizing`).
    pub fn model_id(self) -> &'static str {
        match self {
            AgentKind::Meta => "rl_meta",
            AgentKind::Sizing => "rl_sizing",
        }
    }
}

/// A closed trade as the meta-strategy agent learns from it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaOutcome {
    /// When the trade closed.
    pub closed_at: Timestamp,
    /// The state it opened in.
    pub state: MetaState,
    /// The style that took it.
    pub strategy: Strategy,
    /// Result, %.
    pub pnl_pct: f64,
    /// Hours in the trade.
    pub hours: f64,
    /// Worst excursion against it, %.
    pub max_drawdown_pct: f64,
    /// The style's recent win rate, in [0, 1].
    pub win_rate: f64,
    /// The state the next decision was taken in (`None`: the reward stands alone).
    pub next: Option<MetaState>,
}

/// A closed trade as the sizing agent learns from it.
#[derive(Clone, Debug, PartialEq)]
pub struct SizingOutcome {
    /// When the trade closed.
    pub closed_at: Timestamp,
    /// The state it was sized in.
    pub state: SizingState,
    /// The sizing action taken.
    pub action: SizingAction,
    /// Result, %.
    pub pnl_pct: f64,
    /// Hours in the trade.
    pub hours: f64,
    /// Worst excursion against it, %.
    pub max_drawdown_pct: f64,
    /// Closed at its take-profit.
    pub hit_tp: bool,
    /// Closed at its stop-loss.
    pub hit_sl: bool,
    /// The state the next sizing was decided in (`None`: the reward stands alone).
    pub next: Option<SizingState>,
}

/// What one record did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recorded {
    /// The reward learned from.
    pub reward: f64,
    /// The updated Q value.
    pub q: f64,
    /// Whether the action taken was the table's greedy choice before the update (a causal
    /// check of what the table had learned so far).
    pub was_greedy: bool,
    /// The snapshot version stored by this update, if any.
    pub snapshot: Option<String>,
    /// States pruned at that snapshot.
    pub pruned: usize,
    /// The reset that came before the update, if the regime had changed for good.
    pub reset: Option<RlReset>,
}

/// A stored version of an agent's table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableVersion {
    /// The version tag.
    pub tag: String,
    /// ACTIVE (the live table), RETIRED (an older snapshot or an archived table), …
    pub status: Status,
    /// Its update count.
    pub updates: u64,
    /// Its state count.
    pub states: u64,
    /// Why it was stored.
    pub reason: String,
}

/// One visited state and what the table would do there now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GreedyChoice {
    /// The state's key.
    pub state: String,
    /// The best known action.
    pub action: String,
    /// Its Q value.
    pub q: f64,
    /// Updates the state has had.
    pub visits: u64,
}

/// An agent's live table and stored versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentStatus {
    /// Which agent.
    pub agent: AgentKind,
    /// The live table's version, if one is stored.
    pub live: Option<String>,
    /// Updates of the live table.
    pub updates: u64,
    /// Its ε.
    pub epsilon: f64,
    /// The greedy choice of every visited state, most visited first.
    pub greedy: Vec<GreedyChoice>,
    /// Every stored version, oldest first.
    pub versions: Vec<TableVersion>,
}

/// Watches the regime of recorded trades for a change that holds.
#[derive(Clone, Debug, Default)]
struct RegimeWatch {
    /// The regime the table is learning in.
    current: Option<Regime>,
    /// A different regime seen since, and when it was first seen.
    candidate: Option<(Regime, Timestamp)>,
}

impl RegimeWatch {
    /// Note `regime` at `at`; returns (old, new) when a new regime has held for `sustain`.
    fn observe(&mut self, at: Timestamp, regime: Regime, sustain: SignedDuration) -> Option<(Regime, Regime)> {
        let Some(current) = self.current else {
            self.current = Some(regime);
            return None;
        };
        if regime == current {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((r, since)) if r == regime => {
                if at.duration_since(since) >= sustain {
                    self.current = Some(regime);
                    self.candidate = None;
                    return Some((current, regime));
                }
            }
            _ => self.candidate = Some((regime, at)),
        }
        None
    }
}

/// One agent's table and upkeep counters.
struct Managed<A: Action> {
    kind: AgentKind,
    agent: QAgent<A>,
    live: Option<String>,
    since_snapshot: u64,
    reward_since: f64,
    watch: RegimeWatch,
}

/// The host's handle on both agents (`Send + Sync`; each agent behind its own lock).
pub struct RlAgents {
    store: VersionStore,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    policy: RlPolicy,
    sustain: SignedDuration,
    meta: Mutex<Managed<Strategy>>,
    sizing: Mutex<Managed<SizingAction>>,
}

fn change(reason: impl Into<String>) -> Change {
    Change::new("rl", reason)
}

impl RlAgents {
    /// Open both agents on `store` (its clock is used for version tags): the ACTIVE tables
    /// where stored, fresh ones from `policy.rl` otherwise.
    pub fn open(
        store: VersionStore,
        policy: &Policy,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<RlAgents> {
        policy.validate()?;
        let rl = policy.rl.clone();
        let meta = Self::load::<Strategy>(&store, AgentKind::Meta, rl.learning.clone())?;
        let sizing_cfg = QConfig { seed: rl.learning.seed.wrapping_add(1), ..rl.learning.clone() };
        let sizing = Self::load::<SizingAction>(&store, AgentKind::Sizing, sizing_cfg)?;
        Ok(RlAgents {
            store,
            events,
            clock,
            sustain: SignedDuration::from_hours(24 * policy.regime_sustain_days as i64),
            policy: rl,
            meta: Mutex::new(meta),
            sizing: Mutex::new(sizing),
        })
    }

    fn load<A: Action>(store: &VersionStore, kind: AgentKind, cfg: QConfig) -> Result<Managed<A>> {
        let (live, agent) = match versions::load_active::<A>(store, kind.model_id())? {
            Some((tag, agent)) => (Some(tag), agent),
            None => (None, QAgent::new(cfg)?),
        };
        Ok(Managed { kind, agent, live, since_snapshot: 0, reward_since: 0.0, watch: RegimeWatch::default() })
    }

    /// The rl policy in force.
    pub fn policy(&self) -> &RlPolicy {
        &self.policy
    }

    /// An ε-greedy style for `state`.
    pub fn choose_strategy(&self, state: &MetaState) -> Strategy {
        lock(&self.meta).agent.choose(&state.key())
    }

    /// An ε-greedy sizing action for `state`, and the position it gives within the policy's
    /// limits (whatever the table asked for).
    pub fn size_position(&self, state: &SizingState, ctx: &SizingContext) -> Result<(SizingAction, SizedPosition)> {
        let action = lock(&self.sizing).agent.choose(&state.key());
        let sized = clamp(&action, ctx, &self.policy.limits)?;
        Ok((action, sized))
    }

    /// The best known style in `state` (no exploration, nothing advanced).
    pub fn greedy_strategy(&self, state: &MetaState) -> Strategy {
        lock(&self.meta).agent.greedy(&state.key()).0
    }

    /// The best known sizing action in `state`.
    pub fn greedy_sizing(&self, state: &SizingState) -> SizingAction {
        lock(&self.sizing).agent.greedy(&state.key()).0
    }

    /// Learn from a closed trade's style.
    pub fn record_strategy(&self, o: &MetaOutcome) -> Result<Recorded> {
        let reward = meta_reward(o.pnl_pct, o.hours, o.max_drawdown_pct, o.win_rate);
        let next = o.next.map(|s| s.key());
        let mut m = lock(&self.meta);
        self.record(&mut m, o.closed_at, o.state.regime, &o.state.key(), o.strategy, reward, next.as_deref())
    }

    /// Learn from a closed trade's sizing.
    pub fn record_sizing(&self, o: &SizingOutcome) -> Result<Recorded> {
        let reward = sizing_reward(o.pnl_pct, o.hours, o.max_drawdown_pct, o.hit_tp, o.hit_sl);
        let next = o.next.map(|s| s.key());
        let mut m = lock(&self.sizing);
        self.record(&mut m, o.closed_at, o.state.regime, &o.state.key(), o.action, reward, next.as_deref())
    }

    #[allow(clippy::too_many_arguments)]
    fn record<A: Action>(
        &self,
        m: &mut Managed<A>,
        at: Timestamp,
        regime: Regime,
        state: &str,
        action: A,
        reward: f64,
        next: Option<&str>,
    ) -> Result<Recorded> {
        let mut reset = None;
        if let Some((from, to)) = m.watch.observe(at, regime, self.sustain)
            && self.policy.reset_on_regime_change
        {
            reset = Some(self.reset(m, from, to)?);
        }
        let was_greedy = m.agent.greedy(state).0 == action;
        let q = m.agent.update(&Transition { state, action, reward, next })?;
        m.since_snapshot += 1;
        m.reward_since += reward;
        let (mut snapshot, mut pruned) = (None, 0);
        if m.since_snapshot >= self.policy.snapshot_every {
            pruned = self.prune(m)?;
            snapshot = Some(self.snapshot(m)?);
        }
        let update = RlUpdate {
            state: state.to_string(),
            action: action.key(),
            reward,
            q,
            updates: m.agent.total_updates(),
            epsilon: m.agent.epsilon(),
            snapshot: snapshot.clone(),
            pruned,
        };
        self.emit(
            m.kind,
            match m.kind {
                AgentKind::Meta => EventKind::RlMetaUpdated(update),
                AgentKind::Sizing => EventKind::RlSizingUpdated(update),
            },
        );
        Ok(Recorded { reward, q, was_greedy, snapshot, pruned, reset })
    }

    fn emit(&self, kind: AgentKind, event: EventKind) {
        self.events.emit(&Event { ts: self.clock.now(), model: Some(kind.model_id().into()), kind: event });
    }

    /// Drop states idle for longer than the policy allows; audited when any went.
    fn prune<A: Action>(&self, m: &mut Managed<A>) -> Result<usize> {
        let limit = self.policy.prune_after_updates;
        if limit == 0 {
            return Ok(0);
        }
        let pruned = m.agent.prune(limit);
        if pruned > 0 {
            let details = serde_json::json!({"pruned": pruned, "idle_updates": limit, "states": m.agent.n_states()});
            let why = change(format!("{pruned} states not updated in {limit} updates"));
            self.store.log_event(m.kind.model_id(), AuditKind::RlPruned, &why, Some(details))?;
        }
        Ok(pruned)
    }

    /// Store the live table as the new ACTIVE version.
    fn snapshot<A: Action>(&self, m: &mut Managed<A>) -> Result<String> {
        let n = m.since_snapshot.max(1) as f64;
        let mean = m.reward_since / n;
        let why = change(format!("snapshot after {} updates (mean reward {mean:.4})", m.since_snapshot));
        let metrics = [("updates_since_snapshot", m.since_snapshot as f64), ("mean_reward", mean)];
        let id = m.kind.model_id();
        let tag = versions::save(&self.store, id, id, &m.agent, Status::Active, &metrics, &why)?;
        m.live = Some(tag.clone());
        m.since_snapshot = 0;
        m.reward_since = 0.0;
        Ok(tag)
    }

    /// Archive the table as a RETIRED version and start afresh.
    fn reset<A: Action>(&self, m: &mut Managed<A>, from: Regime, to: Regime) -> Result<RlReset> {
        let id = m.kind.model_id();
        let updates = m.agent.total_updates();
        let why = change(format!("regime changed from {} to {}: table archived", upper(&from), upper(&to)));
        let archived = versions::save(&self.store, id, id, &m.agent, Status::Retired, &[], &why)?;
        m.agent.reset(self.policy.learning.epsilon_start);
        m.since_snapshot = 0;
        m.reward_since = 0.0;
        let r = RlReset { archived, from: upper(&from), to: upper(&to), updates };
        let details = serde_json::to_value(&r).expect("a reset serialises");
        self.store.log_event(id, AuditKind::RlReset, &why, Some(details))?;
        self.emit(
            m.kind,
            match m.kind {
                AgentKind::Meta => EventKind::RlMetaReset(r.clone()),
                AgentKind::Sizing => EventKind::RlSizingReset(r.clone()),
            },
        );
        Ok(r)
    }

    /// Store both tables if they have updates since their last snapshot; returns the new
    /// versions.
    pub fn flush(&self) -> Result<Vec<(AgentKind, String)>> {
        let mut out = Vec::new();
        {
            let mut m = lock(&self.meta);
            if m.since_snapshot > 0 {
                out.push((AgentKind::Meta, self.snapshot(&mut m)?));
            }
        }
        let mut s = lock(&self.sizing);
        if s.since_snapshot > 0 {
            out.push((AgentKind::Sizing, self.snapshot(&mut s)?));
        }
        Ok(out)
    }

    /// Make the stored snapshot `tag` of `agent` the live table (refused, and nothing
    /// changed, when it does not restore). Updates since the last snapshot are dropped.
    pub fn rollback(&self, agent: AgentKind, tag: &str) -> Result<()> {
        let why = change(format!("rollback to {tag}"));
        match agent {
            AgentKind::Meta => {
                let mut m = lock(&self.meta);
                m.agent = versions::rollback(&self.store, agent.model_id(), tag, &why)?;
                (m.live, m.since_snapshot, m.reward_since) = (Some(tag.to_string()), 0, 0.0);
            }
            AgentKind::Sizing => {
                let mut m = lock(&self.sizing);
                m.agent = versions::rollback(&self.store, agent.model_id(), tag, &why)?;
                (m.live, m.since_snapshot, m.reward_since) = (Some(tag.to_string()), 0, 0.0);
            }
        }
        Ok(())
    }

    /// Both agents' live tables (as in memory, unsaved updates included) and stored versions.
    pub fn status(&self) -> Result<Vec<AgentStatus>> {
        let meta = {
            let m = lock(&self.meta);
            describe(&self.store, m.kind, m.live.clone(), &m.agent)?
        };
        let s = lock(&self.sizing);
        Ok(vec![meta, describe(&self.store, s.kind, s.live.clone(), &s.agent)?])
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic mid-update leaves a table that is still a valid table: go on with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn describe<A: Action>(
    store: &VersionStore,
    kind: AgentKind,
    live: Option<String>,
    q: &QAgent<A>,
) -> Result<AgentStatus> {
    let mut greedy: Vec<GreedyChoice> = q
        .table()
        .iter()
        .map(|(state, row)| {
            let (a, v) = q.greedy(state);
            GreedyChoice { state: state.clone(), action: a.key(), q: v, visits: row.visits.iter().sum() }
        })
        .collect();
    greedy.sort_by(|a, b| b.visits.cmp(&a.visits).then_with(|| a.state.cmp(&b.state)));
    Ok(AgentStatus {
        agent: kind,
        live,
        updates: q.total_updates(),
        epsilon: q.epsilon(),
        greedy,
        versions: stored_versions(store, kind)?,
    })
}

/// Every stored version of `agent`'s table, oldest first (none for a store without it).
pub fn stored_versions(store: &VersionStore, agent: AgentKind) -> Result<Vec<TableVersion>> {
    let id = agent.model_id();
    if !store.models()?.iter().any(|m| m == id) {
        return Ok(Vec::new());
    }
    let reasons: std::collections::BTreeMap<String, String> = store
        .history(id)?
        .into_iter()
        .filter(|r| r.event == AuditKind::Registered)
        .filter_map(|r| Some((r.version?, r.reason)))
        .collect();
    store
        .list(id, None)?
        .into_iter()
        .map(|v| {
            let info = store.get(id, &v.tag)?;
            let metric = |k: &str| info.meta.train_metrics.get(k).copied().unwrap_or(0.0) as u64;
            Ok(TableVersion {
                reason: reasons.get(&v.tag).cloned().unwrap_or_default(),
                tag: v.tag,
                status: v.status,
                updates: metric("total_updates"),
                states: metric("states"),
            })
        })
        .collect()
}

/// Both agents as stored (the ACTIVE tables; a store without them shows empty tables).
pub fn stored_status(store: &VersionStore, policy: &Policy) -> Result<Vec<AgentStatus>> {
    let meta = versions::load_active::<Strategy>(store, AgentKind::Meta.model_id())?;
    let sizing = versions::load_active::<SizingAction>(store, AgentKind::Sizing.model_id())?;
    let fresh_meta = || QAgent::<Strategy>::new(policy.rl.learning.clone());
    let fresh_sizing = || QAgent::<SizingAction>::new(policy.rl.learning.clone());
    Ok(vec![
        match meta {
            Some((tag, q)) => describe(store, AgentKind::Meta, Some(tag), &q)?,
            None => describe(store, AgentKind::Meta, None, &fresh_meta()?)?,
        },
        match sizing {
            Some((tag, q)) => describe(store, AgentKind::Sizing, Some(tag), &q)?,
            None => describe(store, AgentKind::Sizing, None, &fresh_sizing()?)?,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::lifecycle::events::ChannelSink;
    use crate::rl::meta_strategy::{Liquidity, Performance, VolLevel};
    use crate::rl::sizing::Bucket;

    const T0: &str = "2024-01-01T00:00:00Z";

    fn state(regime: Regime) -> MetaState {
        MetaState {
            regime,
            volatility: VolLevel::Medium,
            liquidity: Liquidity::High,
            performance: Performance::Neutral,
        }
    }

    fn outcome(at: Timestamp, regime: Regime, strategy: Strategy, pnl: f64) -> MetaOutcome {
        MetaOutcome {
            closed_at: at,
            state: state(regime),
            strategy,
            pnl_pct: pnl,
            hours: 24.0,
            max_drawdown_pct: 0.0,
            win_rate: 0.5,
            next: None,
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: VersionStore,
        clock: Arc<ManualClock>,
        rx: std::sync::mpsc::Receiver<Event>,
        agents: RlAgents,
    }

    fn setup(edit: impl Fn(&mut Policy)) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0.parse().unwrap()));
        let store = VersionStore::open(dir.path()).unwrap().with_clock(clock.clone());
        let mut policy = Policy::default();
        edit(&mut policy);
        let (sink, rx) = ChannelSink::new();
        let agents = RlAgents::open(store.clone(), &policy, Arc::new(sink), clock.clone()).unwrap();
        Setup { _dir: dir, store, clock, rx, agents }
    }

    fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    #[test]
    fn snapshots_every_n_updates_become_the_live_table_and_a_reopened_handle_goes_on_from_it() {
        let s = setup(|p| p.rl.snapshot_every = 5);
        let t0: Timestamp = T0.parse().unwrap();
        let mut tags = Vec::new();
        for i in 0..12 {
            s.clock.set(t0 + hours(i));
            let r =
                s.agents.record_strategy(&outcome(t0 + hours(i), Regime::Trending, Strategy::Breakout, 1.0)).unwrap();
            assert_eq!(r.snapshot.is_some(), (i + 1) % 5 == 0, "update {}", i + 1);
            tags.extend(r.snapshot);
        }
        let events: Vec<Event> = s.rx.try_iter().collect();
        assert_eq!(events.len(), 12);
        assert!(events.iter().all(|e| e.name() == "rl.meta.updated"));
        let versions = stored_versions(&s.store, AgentKind::Meta).unwrap();
        assert_eq!(versions.iter().map(|v| v.tag.clone()).collect::<Vec<_>>(), tags);
        assert_eq!(
            versions.iter().map(|v| (v.status, v.updates)).collect::<Vec<_>>(),
            [(Status::Retired, 5), (Status::Active, 10)]
        );
        assert!(versions[1].reason.contains("snapshot after 5 updates"), "{}", versions[1].reason);
        // Two unsaved updates are stored by flush; a new handle starts from that table.
        let flushed = s.agents.flush().unwrap();
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].0, AgentKind::Meta);
        assert!(s.agents.flush().unwrap().is_empty());
        let again = RlAgents::open(
            s.store.clone(),
            &Policy::default(),
            Arc::new(crate::lifecycle::events::NullSink),
            s.clock.clone(),
        )
        .unwrap();
        let st = again.status().unwrap();
        assert_eq!((st[0].live.as_deref(), st[0].updates), (Some(flushed[0].1.as_str()), 12));
        assert_eq!(again.greedy_strategy(&state(Regime::Trending)), Strategy::Breakout);
        assert_eq!((st[1].live.clone(), st[1].updates), (None, 0));
    }

    #[test]
    fn a_regime_change_that_holds_archives_and_reinitialises_and_one_that_does_not_changes_nothing() {
        let s = setup(|p| p.rl.snapshot_every = 1000);
        let t0: Timestamp = T0.parse().unwrap();
        let rec = |h: i64, r: Regime| {
            s.agents.record_strategy(&outcome(t0 + hours(h), r, Strategy::TrendFollow, 2.0)).unwrap()
        };
        for h in 0..100 {
            assert!(rec(h, Regime::Trending).reset.is_none());
        }
        // RANGING for two days, then TRENDING again: no reset.
        for h in [100, 130, 148] {
            assert!(rec(h, Regime::Ranging).reset.is_none());
        }
        assert!(rec(149, Regime::Trending).reset.is_none());
        // RANGING from hour 150 on: the reset comes with the first trade 72 hours later.
        assert!(rec(150, Regime::Ranging).reset.is_none());
        assert!(rec(221, Regime::Ranging).reset.is_none());
        let before = s.agents.status().unwrap()[0].updates;
        assert_eq!(before, 106);
        let r = rec(222, Regime::Ranging).reset.expect("the new regime has held for 3 days");
        assert_eq!((r.from.as_str(), r.to.as_str(), r.updates), ("TRENDING", "RANGING", 106));
        let st = &s.agents.status().unwrap()[0];
        assert_eq!(st.updates, 1, "a fresh table with this trade's update");
        assert!((st.epsilon - 0.5 * 0.995).abs() < 1e-12, "ε restarts at 0.5: {}", st.epsilon);
        let v = stored_versions(&s.store, AgentKind::Meta).unwrap();
        assert_eq!(
            (v.len(), v[0].tag.as_str(), v[0].status, v[0].updates),
            (1, r.archived.as_str(), Status::Retired, 106)
        );
        let audit = s.store.history("rl_meta").unwrap();
        assert!(
            audit.iter().any(
                |a| a.event == AuditKind::RlReset && a.details.as_ref().unwrap()["archived"] == r.archived.as_str()
            )
        );
        assert!(s.rx.try_iter().any(|e| e.name() == "rl.meta.reset"));

        // With resets off the same history changes nothing.
        let off = setup(|p| p.rl.reset_on_regime_change = false);
        for h in 0..100 {
            off.agents.record_strategy(&outcome(t0 + hours(h), Regime::Trending, Strategy::TrendFollow, 2.0)).unwrap();
        }
        for h in 150..=222 {
            let r = off
                .agents
                .record_strategy(&outcome(t0 + hours(h), Regime::Ranging, Strategy::TrendFollow, 2.0))
                .unwrap();
            assert!(r.reset.is_none());
        }
        assert_eq!(off.agents.status().unwrap()[0].updates, 173);
    }

    #[test]
    fn pruning_at_a_snapshot_drops_idle_states_and_is_audited() {
        let s = setup(|p| {
            p.rl.snapshot_every = 10;
            p.rl.prune_after_updates = 5;
        });
        let t0: Timestamp = T0.parse().unwrap();
        // One VOLATILE trade, then nine TRENDING: at the snapshot the VOLATILE state is 9 updates idle.
        s.agents.record_strategy(&outcome(t0, Regime::Volatile, Strategy::Defensive, 1.0)).unwrap();
        let mut last = None;
        for h in 1..10 {
            last = Some(
                s.agents.record_strategy(&outcome(t0 + hours(h), Regime::Trending, Strategy::Breakout, 1.0)).unwrap(),
            );
        }
        let last = last.unwrap();
        assert_eq!((last.pruned, last.snapshot.is_some()), (1, true));
        let st = &s.agents.status().unwrap()[0];
        assert_eq!(st.greedy.iter().map(|g| g.state.as_str()).collect::<Vec<_>>(), [state(Regime::Trending).key()]);
        let audit = s.store.history("rl_meta").unwrap();
        assert_eq!(audit.iter().filter(|a| a.event == AuditKind::RlPruned).count(), 1);
        // Nothing idle long enough: nothing pruned, nothing audited.
        let keep = setup(|p| {
            p.rl.snapshot_every = 10;
            p.rl.prune_after_updates = 9;
        });
        keep.agents.record_strategy(&outcome(t0, Regime::Volatile, Strategy::Defensive, 1.0)).unwrap();
        for h in 1..10 {
            let r = keep
                .agents
                .record_strategy(&outcome(t0 + hours(h), Regime::Trending, Strategy::Breakout, 1.0))
                .unwrap();
            assert_eq!(r.pruned, 0);
        }
        assert_eq!(keep.agents.status().unwrap()[0].greedy.len(), 2);
    }

    #[test]
    fn sizing_is_clamped_rollback_restores_a_snapshot_and_the_handle_is_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RlAgents>();
        let s = setup(|p| {
            p.rl.snapshot_every = 40;
            p.rl.limits.max_leverage = 2;
        });
        let st = SizingState {
            regime: Regime::Trending,
            confidence: Bucket::High,
            exposure: Bucket::Low,
            win_rate: Bucket::Medium,
            volatility: VolLevel::High,
        };
        let ctx = SizingContext { balance: 10_000.0, base_fraction: 0.1, stop_distance: 0.02, open_positions: 0 };
        for _ in 0..50 {
            let (action, pos) = s.agents.size_position(&st, &ctx).unwrap();
            assert!(pos.leverage <= 2 && pos.risk <= 0.02 * 10_000.0 + 1e-9, "{action:?} {pos:?}");
        }
        let t0: Timestamp = T0.parse().unwrap();
        let big = SizingAction::all().into_iter().find(|a| a.leverage() == 10).unwrap();
        let small = SizingAction::all()[0];
        let sized = |action: SizingAction, pnl: f64| SizingOutcome {
            closed_at: t0,
            state: st,
            action,
            pnl_pct: pnl,
            hours: 1.0,
            max_drawdown_pct: 0.0,
            hit_tp: false,
            hit_sl: false,
            next: None,
        };
        // Four threads record 10 trades each: 40 updates, one snapshot preferring `big`.
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for _ in 0..10 {
                        s.agents.record_sizing(&sized(big, 5.0)).unwrap();
                    }
                });
            }
        });
        let first = stored_versions(&s.store, AgentKind::Sizing).unwrap();
        assert_eq!((first.len(), first[0].updates), (1, 40));
        assert_eq!(s.agents.greedy_sizing(&st), big);
        for _ in 0..200 {
            s.agents.record_sizing(&sized(big, -50.0)).unwrap();
            s.agents.record_sizing(&sized(small, 1.0)).unwrap();
        }
        assert_eq!(s.agents.greedy_sizing(&st), small);
        // An unknown tag is refused and nothing changes; the snapshot restores.
        let e = s.agents.rollback(AgentKind::Sizing, "v19990101_000000").unwrap_err().to_string();
        assert!(e.contains("v19990101_000000"), "{e}");
        assert_eq!(s.agents.greedy_sizing(&st), small);
        s.agents.rollback(AgentKind::Sizing, &first[0].tag).unwrap();
        assert_eq!(s.agents.greedy_sizing(&st), big);
        assert_eq!(s.agents.status().unwrap()[1].live.as_deref(), Some(first[0].tag.as_str()));
    }
}
