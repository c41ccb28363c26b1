//! A tabular Q-learning agent over discrete states and actions.
//!
//! States are keyed by a stable string (`TRENDING_HIGH_MEDIUM_GOOD`), actions by their index in
//! a fixed, named action list, so a snapshot can be read back by another process and checked
//! against the actions it was learned for. Choices are ε-greedy: with probability ε a uniform
//! random action, otherwise the best known one (ties and unseen states go to the lowest
//! action index). ε decays multiplicatively per update down to a floor.
//!
//! Randomness comes from `(seed, number of choices made)` alone (`Rng::stream`), not from a
//! generator carried along: the same seed and the same sequence of calls give the same choices
//! and the same table, and a restored snapshot goes on exactly as the original would have.
//!
//! The update is the one-step Q-learning rule
//! `Q(s,a) ← Q(s,a) + α·(r + γ·max_a' Q(s',a') − Q(s,a))`, with `γ·max` dropped when the
//! transition is terminal (no next state). Unseen entries are 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::config::rl::QConfig;
use crate::rng::Rng;
use crate::{Error, Result};

/// Snapshot format written by [`QAgent::snapshot`].
pub const SNAPSHOT_FORMAT: u32 = 1;

/// A finite action set with stable names.
pub trait Action: Copy + Eq + std::fmt::Debug {
    /// Every action, in a fixed order (the table's column order).
    fn all() -> Vec<Self>;
    /// The action's stable name, stored in snapshots.
    fn key(&self) -> String;
}

/// One observed step: in `state` the agent took `action`, earned `reward`, and landed in
/// `next` (`None` when the episode ended there).
#[derive(Clone, Debug, PartialEq)]
pub struct Transition<'a, A> {
    /// Key of the state the action was taken in.
    pub state: &'a str,
    /// The action taken (possibly not the one the agent chose: off-policy updates are fine).
    pub action: A,
    /// The reward it earned.
    pub reward: f64,
    /// Key of the state that followed, if any.
    pub next: Option<&'a str>,
}

/// The values and bookkeeping of one state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateRow {
    /// Q value per action (the agent's action order).
    pub q: Vec<f64>,
    /// Updates per action.
    pub visits: Vec<u64>,
    /// The agent's update count when this state was last updated.
    pub last_update: u64,
}

/// A serialisable copy of an agent: enough to restore it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QSnapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format_version: u32,
    /// When the snapshot was taken (RFC 3339).
    pub created_at: String,
    /// Action names, in column order.
    pub actions: Vec<String>,
    /// The table, by state key.
    pub table: BTreeMap<String, StateRow>,
    /// Updates applied since the table was created.
    pub total_updates: u64,
    /// Choices made (the exploration stream's position).
    pub choices: u64,
    /// Current ε.
    pub epsilon: f64,
    /// The settings.
    pub config: QConfig,
}

/// A Q-learning agent over action type `A`.
#[derive(Clone, Debug)]
pub struct QAgent<A: Action> {
    actions: Vec<A>,
    table: BTreeMap<String, StateRow>,
    total_updates: u64,
    choices: u64,
    epsilon: f64,
    config: QConfig,
}

impl<A: Action> QAgent<A> {
    /// An empty table under `config`.
    pub fn new(config: QConfig) -> Result<Self> {
        config.validate()?;
        let actions = A::all();
        if actions.is_empty() {
            return Err(Error::InvalidParam { field: "rl.actions".into(), reason: "no actions".into() });
        }
        Ok(QAgent {
            actions,
            table: BTreeMap::new(),
            total_updates: 0,
            choices: 0,
            epsilon: config.epsilon_start,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &QConfig {
        &self.config
    }

    /// Current ε.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Updates applied so far.
    pub fn total_updates(&self) -> u64 {
        self.total_updates
    }

    /// States with at least one update.
    pub fn n_states(&self) -> usize {
        self.table.len()
    }

    /// The table, by state key.
    pub fn table(&self) -> &BTreeMap<String, StateRow> {
        &self.table
    }

    fn index(&self, a: A) -> usize {
        self.actions.iter().position(|&x| x == a).expect("`Action::all` lists every action")
    }

    /// Q value of `action` in `state` (0 when never updated).
    pub fn q(&self, state: &str, action: A) -> f64 {
        self.table.get(state).map_or(0.0, |r| r.q[self.index(action)])
    }

    /// The best known action in `state` and its value: the lowest index among the largest
    /// values (the first action for an unseen state).
    pub fn greedy(&self, state: &str) -> (A, f64) {
        match self.table.get(state) {
            None => (self.actions[0], 0.0),
            Some(r) => {
                let mut best = 0;
                for (i, &v) in r.q.iter().enumerate() {
                    if v > r.q[best] {
                        best = i;
                    }
                }
                (self.actions[best], r.q[best])
            }
        }
    }

    /// An ε-greedy choice in `state`. Each call advances the exploration stream by one.
    pub fn choose(&mut self, state: &str) -> A {
        let mut rng = Rng::stream(self.config.seed, self.choices);
        self.choices += 1;
        if rng.next_f64() < self.epsilon { self.actions[rng.below(self.actions.len())] } else { self.greedy(state).0 }
    }

    /// Apply one Q-learning update and decay ε. Returns the new Q value. A non-finite reward
    /// is refused: one NaN would poison the row for good.
    pub fn update(&mut self, t: &Transition<'_, A>) -> Result<f64> {
        if !t.reward.is_finite() {
            return Err(Error::InvalidParam {
                field: "rl.reward".into(),
                reason: format!("not finite ({}) for state {} action {:?}", t.reward, t.state, t.action),
            });
        }
        let future = match t.next {
            Some(next) => self.config.discount * self.greedy(next).1,
            None => 0.0,
        };
        let a = self.index(t.action);
        let n = self.actions.len();
        self.total_updates += 1;
        let row = self.table.entry(t.state.to_string()).or_insert_with(|| StateRow {
            q: vec![0.0; n],
            visits: vec![0; n],
            last_update: 0,
        });
        row.q[a] += self.config.learning_rate * (t.reward + future - row.q[a]);
        row.visits[a] += 1;
        row.last_update = self.total_updates;
        self.epsilon = (self.epsilon * self.config.epsilon_decay).max(self.config.epsilon_floor);
        Ok(row.q[a])
    }

    /// Drop the states whose last update is more than `updates` updates old; returns how
    /// many went.
    pub fn prune(&mut self, updates: u64) -> usize {
        let before = self.table.len();
        let total = self.total_updates;
        self.table.retain(|_, r| total - r.last_update <= updates);
        before - self.table.len()
    }

    /// Forget everything learned and explore again from `epsilon` (the seed's stream goes on,
    /// so the new table does not replay the old one's draws).
    pub fn reset(&mut self, epsilon: f64) {
        self.table.clear();
        self.total_updates = 0;
        self.epsilon = epsilon.clamp(0.0, 1.0);
    }

    /// A serialisable copy, stamped `created_at`.
    pub fn snapshot(&self, created_at: jiff::Timestamp) -> QSnapshot {
        QSnapshot {
            format_version: SNAPSHOT_FORMAT,
            created_at: created_at.to_string(),
            actions: self.actions.iter().map(Action::key).collect(),
            table: self.table.clone(),
            total_updates: self.total_updates,
            choices: self.choices,
            epsilon: self.epsilon,
            config: self.config.clone(),
        }
    }

    /// The agent a snapshot describes. Refuses another format, another action list, rows of
    /// the wrong width and non-finite values, naming `source` (a file or version) in the error.
    pub fn restore(s: &QSnapshot, source: &str) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptModel { source_name: source.to_string(), reason };
        if s.format_version != SNAPSHOT_FORMAT {
            return Err(corrupt(format!(
                "Q-table snapshot format {} (this build reads {SNAPSHOT_FORMAT})",
                s.format_version
            )));
        }
        let mut agent = QAgent::<A>::new(s.config.clone()).map_err(|e| corrupt(e.to_string()))?;
        let want: Vec<String> = agent.actions.iter().map(Action::key).collect();
        if s.actions != want {
            return Err(corrupt(format!("actions {:?}, expected {:?}", s.actions, want)));
        }
        for (key, row) in &s.table {
            if row.q.len() != want.len() || row.visits.len() != want.len() {
                return Err(corrupt(format!("state {key}: {} values for {} actions", row.q.len(), want.len())));
            }
            if let Some(v) = row.q.iter().find(|v| !v.is_finite()) {
                return Err(corrupt(format!("state {key}: non-finite value {v}")));
            }
        }
        if !(0.0..=1.0).contains(&s.epsilon) {
            return Err(corrupt(format!("epsilon {} outside [0, 1]", s.epsilon)));
        }
        agent.table = s.table.clone();
        agent.total_updates = s.total_updates;
        agent.choices = s.choices;
        agent.epsilon = s.epsilon;
        Ok(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Arm {
        A,
        B,
        C,
        D,
        E,
    }

    impl Action for Arm {
        fn all() -> Vec<Self> {
            vec![Arm::A, Arm::B, Arm::C, Arm::D, Arm::E]
        }
        fn key(&self) -> String {
            format!("{self:?}").to_lowercase()
        }
    }

    fn agent(config: QConfig) -> QAgent<Arm> {
        QAgent::new(config).unwrap()
    }

    fn step<'a>(state: &'a str, action: Arm, reward: f64, next: Option<&'a str>) -> Transition<'a, Arm> {
        Transition { state, action, reward, next }
    }

    #[test]
    fn updates_follow_the_q_learning_rule_by_hand() {
        let mut q = agent(QConfig { learning_rate: 0.1, discount: 0.9, ..QConfig::default() });
        // Unseen next state: worth 0. 0 + 0.1·(1 + 0.9·0 − 0) = 0.1.
        assert!((q.update(&step("s", Arm::A, 1.0, Some("t"))).unwrap() - 0.1).abs() < 1e-15);
        // Terminal: 0.1 + 0.1·(1 − 0.1) = 0.19.
        assert!((q.update(&step("s", Arm::A, 1.0, None)).unwrap() - 0.19).abs() < 1e-15);
        // Q(t, C) = 0.1·2 = 0.2 is t's best; a negative action there must not count.
        q.update(&step("t", Arm::C, 2.0, None)).unwrap();
        q.update(&step("t", Arm::B, -5.0, None)).unwrap();
        assert_eq!(q.greedy("t"), (Arm::C, 0.2));
        // 0.19 + 0.1·(1 + 0.9·0.2 − 0.19) = 0.289.
        assert!((q.update(&step("s", Arm::A, 1.0, Some("t"))).unwrap() - 0.289).abs() < 1e-15);
        assert_eq!(q.q("s", Arm::A), q.table()["s"].q[0]);
        assert_eq!(q.table()["s"].visits, vec![3, 0, 0, 0, 0]);
        assert_eq!(q.total_updates(), 5);
        assert_eq!(q.q("nowhere", Arm::E), 0.0);
    }

    #[test]
    fn epsilon_decays_per_update_to_its_floor() {
        let mut q = agent(QConfig { epsilon_start: 0.5, epsilon_decay: 0.5, epsilon_floor: 0.2, ..QConfig::default() });
        assert_eq!(q.epsilon(), 0.5);
        q.update(&step("s", Arm::A, 0.0, None)).unwrap();
        assert_eq!(q.epsilon(), 0.25);
        q.update(&step("s", Arm::A, 0.0, None)).unwrap();
        assert_eq!(q.epsilon(), 0.2);
        // Defaults: 0.5 → the 0.05 floor after about 460 updates, not before.
        let mut d = agent(QConfig::default());
        for i in 0..460 {
            d.update(&step("s", Arm::A, 0.0, None)).unwrap();
            if i == 400 {
                assert!(d.epsilon() > 0.05);
            }
        }
        assert_eq!(d.epsilon(), 0.05);
    }

    /// A contextual bandit: in each of four states one arm pays +1 on average, the others 0,
    /// all with unit noise. Explore-then-exploit must find every state's arm.
    #[test]
    fn learns_the_best_arm_of_each_state_of_a_contextual_bandit() {
        let best = [Arm::C, Arm::A, Arm::E, Arm::B];
        let states = ["s0", "s1", "s2", "s3"];
        let mut q =
            agent(QConfig { discount: 0.0, epsilon_decay: 0.999, epsilon_floor: 0.1, seed: 7, ..QConfig::default() });
        let mut noise = Rng::new(11);
        for i in 0..8000 {
            let s = i % 4;
            let a = q.choose(states[s]);
            let reward = f64::from(u8::from(a == best[s])) + noise.normal();
            q.update(&step(states[s], a, reward, None)).unwrap();
        }
        for s in 0..4 {
            assert_eq!(q.greedy(states[s]).0, best[s], "state {s}: {:?}", q.table()[states[s]]);
        }
        // Exploitation dominates by the end: the floor's 10 % exploration, spread over 5 arms.
        let hits = (0..1000).filter(|&i| q.choose(states[i % 4]) == best[i % 4]).count();
        assert!(hits > 880, "{hits} of 1000");
    }

    #[test]
    fn the_same_seed_and_calls_give_the_same_choices_and_table() {
        let run = |seed: u64| {
            let mut q = agent(QConfig { seed, ..QConfig::default() });
            let mut picks = Vec::new();
            for i in 0..300 {
                let s = ["x", "y", "z"][i % 3];
                let a = q.choose(s);
                picks.push(a);
                q.update(&step(s, a, (i % 7) as f64 - 3.0, Some("x"))).unwrap();
            }
            (picks, q.snapshot(jiff::Timestamp::UNIX_EPOCH))
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3).0, run(4).0);
    }

    #[test]
    fn a_restored_snapshot_goes_on_as_the_original_would() {
        let mut q = agent(QConfig { seed: 5, ..QConfig::default() });
        for i in 0..200 {
            let s = ["a", "b"][i % 2];
            let a = q.choose(s);
            q.update(&step(s, a, if a == Arm::D { 1.0 } else { -0.2 }, None)).unwrap();
        }
        let json = serde_json::to_string(&q.snapshot(jiff::Timestamp::UNIX_EPOCH)).unwrap();
        let back: QSnapshot = serde_json::from_str(&json).unwrap();
        let mut r = QAgent::<Arm>::restore(&back, "snap.json").unwrap();
        for i in 0..100 {
            let s = ["a", "b", "c"][i % 3];
            let (x, y) = (q.choose(s), r.choose(s));
            assert_eq!(x, y, "choice {i}");
            assert_eq!(q.update(&step(s, x, 0.5, None)).unwrap(), r.update(&step(s, y, 0.5, None)).unwrap());
        }
        assert_eq!(q.snapshot(jiff::Timestamp::UNIX_EPOCH), r.snapshot(jiff::Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn restore_refuses_snapshots_that_do_not_fit() {
        let mut q = agent(QConfig::default());
        q.update(&step("s", Arm::B, 1.0, None)).unwrap();
        let good = q.snapshot(jiff::Timestamp::UNIX_EPOCH);
        assert!(QAgent::<Arm>::restore(&good, "ok").is_ok());
        type Breaks = Box<dyn Fn(&mut QSnapshot)>;
        let cases: Vec<(&str, Breaks)> = vec![
            ("format", Box::new(|s| s.format_version = 99)),
            ("actions", Box::new(|s| s.actions.swap(0, 1))),
            ("values for", Box::new(|s| s.table.get_mut("s").unwrap().q.truncate(4))),
            ("non-finite", Box::new(|s| s.table.get_mut("s").unwrap().q[1] = f64::NAN)),
            ("epsilon", Box::new(|s| s.epsilon = 1.5)),
            ("learning_rate", Box::new(|s| s.config.learning_rate = 0.0)),
        ];
        for (what, break_it) in cases {
            let mut bad = good.clone();
            break_it(&mut bad);
            let e = QAgent::<Arm>::restore(&bad, "v7/table.json").unwrap_err().to_string();
            assert!(e.contains("v7/table.json") && e.contains(what), "{what}: {e}");
        }
        // Unknown keys in a stored snapshot are errors, not ignored.
        let mut v = serde_json::to_value(&good).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<QSnapshot>(v).is_err());
    }

    #[test]
    fn pruning_drops_only_states_left_alone_for_long_enough() {
        let mut q = agent(QConfig::default());
        q.update(&step("old", Arm::A, 1.0, None)).unwrap();
        for _ in 0..10 {
            q.update(&step("busy", Arm::B, 1.0, None)).unwrap();
        }
        q.update(&step("recent", Arm::C, 1.0, None)).unwrap();
        // "old" was last updated 11 updates ago, "busy" 1, "recent" 0.
        assert_eq!(q.prune(11), 0);
        assert_eq!(q.prune(10), 1);
        assert!(!q.table().contains_key("old"));
        assert_eq!(q.n_states(), 2);
        assert_eq!(q.prune(1), 0);
        assert_eq!(q.prune(0), 1);
        assert_eq!(q.table().keys().collect::<Vec<_>>(), ["recent"]);
    }

    #[test]
    fn reset_forgets_the_table_and_explores_again() {
        let mut q = agent(QConfig { epsilon_start: 0.3, ..QConfig::default() });
        for _ in 0..50 {
            q.update(&step("s", Arm::E, 1.0, None)).unwrap();
        }
        assert!(q.epsilon() < 0.3);
        q.reset(0.5);
        assert_eq!((q.n_states(), q.total_updates(), q.epsilon()), (0, 0, 0.5));
        assert_eq!(q.greedy("s"), (Arm::A, 0.0));
    }

    #[test]
    fn bad_settings_and_rewards_are_refused_and_good_ones_pass() {
        assert!(QConfig::default().validate().is_ok());
        for (field, c) in [
            ("learning_rate", QConfig { learning_rate: 1.5, ..QConfig::default() }),
            ("discount", QConfig { discount: 1.0, ..QConfig::default() }),
            ("epsilon_floor", QConfig { epsilon_floor: 0.6, ..QConfig::default() }),
            ("epsilon_decay", QConfig { epsilon_decay: 0.0, ..QConfig::default() }),
            ("epsilon_start", QConfig { epsilon_start: f64::NAN, ..QConfig::default() }),
        ] {
            let e = QAgent::<Arm>::new(c).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let mut q = agent(QConfig::default());
        let e = q.update(&step("s", Arm::A, f64::INFINITY, None)).unwrap_err().to_string();
        assert!(e.contains("not finite") && e.contains("state s"), "{e}");
        assert_eq!(q.total_updates(), 0);
    }
}
