//! The intake queue: files announced or found, waiting to be looked at, one
//! queue per tenant. Due files come out round robin across tenants (one
//! file of each in turn, the first tenant changing every round), so one
//! tenant's thousands of files never hold back another tenant's first.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use passerelle_catalog::TenantName;

use super::intake::Arrival;

/// Most files waiting, all tenants together; beyond, the next scan finds them.
const MAX_PENDING: usize = 100_000;

/// A file waiting to be looked at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    /// When to look.
    pub(crate) due: Instant,
    /// A modification time in the future the last look found.
    pub(crate) future_seen: Option<SystemTime>,
}

/// The files waiting, per tenant.
#[derive(Debug, Default)]
pub(crate) struct IntakeQueue {
    tenants: HashMap<TenantName, HashMap<String, Pending>>,
    len: usize,
    /// Rounds served so far: which tenant comes first in the next.
    rounds: usize,
}

impl IntakeQueue {
    /// Looks at `arrival` at `due`, replacing any earlier time (an event
    /// about a file pushes its look back).
    pub(crate) fn announce(&mut self, arrival: Arrival, due: Instant) {
        self.put(arrival, Pending { due, future_seen: None }, true);
    }

    /// Looks at `arrival` at `due`, unless it waits already.
    pub(crate) fn found(&mut self, arrival: Arrival, due: Instant) {
        self.put(arrival, Pending { due, future_seen: None }, false);
    }

    /// Looks at `arrival` again at `due`, remembering a future modification time.
    pub(crate) fn defer(&mut self, arrival: Arrival, due: Instant, future_seen: Option<SystemTime>) {
        self.put(arrival, Pending { due, future_seen }, true);
    }

    fn put(&mut self, arrival: Arrival, pending: Pending, replace: bool) {
        let files = self.tenants.entry(arrival.tenant).or_default();
        match files.get_mut(&arrival.path) {
            Some(existing) if replace => *existing = pending,
            Some(_) => {}
            None if self.len < MAX_PENDING => {
                files.insert(arrival.path, pending);
                self.len += 1;
            }
            None => {}
        }
    }

    /// Removes `arrival`, giving back how it waited.
    pub(crate) fn take(&mut self, arrival: &Arrival) -> Option<Pending> {
        let files = self.tenants.get_mut(&arrival.tenant)?;
        let pending = files.remove(&arrival.path)?;
        self.len -= 1;
        if files.is_empty() {
            self.tenants.remove(&arrival.tenant);
        }
        Some(pending)
    }

    /// Every file due at `now`, in the order to look at them: round robin
    /// over the tenants (each tenant's files earliest first), starting one
    /// tenant further than the previous call.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Arrival> {
        let mut tenants: Vec<(&TenantName, Vec<(&String, Instant)>)> = self
            .tenants
            .iter()
            .map(|(tenant, files)| {
                let mut due: Vec<_> =
                    files.iter().filter(|(_, p)| p.due <= now).map(|(path, p)| (path, p.due)).collect();
                due.sort_by_key(|(path, due)| (*due, (*path).clone()));
                (tenant, due)
            })
            .filter(|(_, due)| !due.is_empty())
            .collect();
        if tenants.is_empty() {
            return Vec::new();
        }
        tenants.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let first = self.rounds % tenants.len();
        tenants.rotate_left(first);
        self.rounds = self.rounds.wrapping_add(1);
        let longest = tenants.iter().map(|(_, due)| due.len()).max().unwrap_or(0);
        let mut order = Vec::new();
        for i in 0..longest {
            for (tenant, due) in &tenants {
                if let Some((path, _)) = due.get(i) {
                    order.push(Arrival { tenant: (*tenant).clone(), path: (*path).clone() });
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn arrival(tenant: &str, path: &str) -> Arrival {
        Arrival { tenant: TenantName::parse(tenant).unwrap(), path: path.into() }
    }

    #[test]
    fn due_files_come_round_robin_across_tenants_each_tenant_in_arrival_order() {
        let mut queue = IntakeQueue::default();
        let now = Instant::now();
        for i in 0..1000 {
            queue.found(arrival("big", &format!("{i:04}.csv")), now - Duration::from_millis(2000 - i));
        }
        queue.announce(arrival("small", "one.csv"), now);
        queue.announce(arrival("later", "x.csv"), now + Duration::from_secs(5));
        let order = queue.due(now);
        assert_eq!(order.len(), 1001);
        let small = order.iter().position(|a| a.tenant.as_str() == "small").unwrap();
        assert!(small <= 1, "the other tenant's first file comes first or second, not {small}th");
        let big: Vec<&str> = order.iter().filter(|a| a.tenant.as_str() == "big").map(|a| a.path.as_str()).collect();
        assert_eq!(big[..3], ["0000.csv", "0001.csv", "0002.csv"]);
        // The next round starts with the other tenant.
        let first = queue.due(now)[0].tenant.clone();
        assert_ne!(first, order[0].tenant);
        // Taken files leave; a found file keeps an announced time.
        assert!(queue.take(&arrival("small", "one.csv")).is_some());
        assert!(queue.take(&arrival("small", "one.csv")).is_none());
        queue.found(arrival("later", "x.csv"), now);
        assert!(queue.due(now).iter().all(|a| a.tenant.as_str() != "later"));
        let future = SystemTime::now() + Duration::from_secs(86_400);
        queue.defer(arrival("later", "x.csv"), now, Some(future));
        assert_eq!(queue.take(&arrival("later", "x.csv")).unwrap().future_seen, Some(future));
    }
}
