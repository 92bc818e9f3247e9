//! What an order event does to its order, and what the order's change does
//! to its customer's figures; the rules across orders and customers (one
//! owner per order, one currency per customer, totals within 64 bits) in
//! [`accept`]. Pure functions: the SQL lives in `store`.
//!
//! An order *counts* when it is completed and not cancelled; it contributes
//! its amount less its refunds (which may never exceed the amount). Applying an event keeps the
//! first value of every fact (`COALESCE`), so any arrival order of an order's
//! events ends in the same state, and a customer's figures change by the
//! difference between the order's contribution before and after: O(1) per
//! event, whatever the customer's history.

use std::collections::HashMap;

/// What is known of one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderState {
    pub currency: Option<String>,
    pub amount_minor: Option<i64>,
    pub completed_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub refunded_minor: i64,
    pub return_count: i64,
}

/// One order event, amounts in minor units, times in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    Completed { currency: String, amount: i64, at: i64 },
    Cancelled { currency: String, amount: i64, at: i64 },
    Returned { currency: String, refund: i64 },
}

impl OrderEvent {
    pub fn currency(&self) -> &str {
        match self {
            OrderEvent::Completed { currency, .. }
            | OrderEvent::Cancelled { currency, .. }
            | OrderEvent::Returned { currency, .. } => currency,
        }
    }
}

impl OrderState {
    /// The state after `event`, or why the event is refused: refunds may
    /// never exceed the order's amount (whichever of the two arrives last is
    /// refused), nor overflow.
    pub fn apply(&self, event: &OrderEvent) -> Result<OrderState, String> {
        let mut next = self.clone();
        next.currency = next.currency.or_else(|| Some(event.currency().to_owned()));
        match *event {
            OrderEvent::Completed { amount, at, .. } => {
                next.amount_minor = next.amount_minor.or(Some(amount));
                next.completed_at = next.completed_at.or(Some(at));
            }
            OrderEvent::Cancelled { amount, at, .. } => {
                next.amount_minor = next.amount_minor.or(Some(amount));
                next.cancelled_at = next.cancelled_at.or(Some(at));
            }
            OrderEvent::Returned { refund, .. } => {
                next.refunded_minor = next
                    .refunded_minor
                    .checked_add(refund)
                    .ok_or_else(|| format!("refund_amount: the order's refunds would overflow ({refund} more)"))?;
                next.return_count += 1;
            }
        }
        if let Some(amount) = next.amount_minor
            && next.refunded_minor > amount
        {
            return Err(format!(
                "refund_amount: the order's refunds ({} minor units) would exceed its amount ({amount})",
                next.refunded_minor
            ));
        }
        Ok(next)
    }

    /// Completed and not cancelled.
    pub fn counts(&self) -> bool {
        self.completed_at.is_some() && self.cancelled_at.is_none()
    }

    /// What it adds to the customer's total spent.
    pub fn contribution(&self) -> i64 {
        if self.counts() { (self.amount_minor.unwrap_or(0) - self.refunded_minor).max(0) } else { 0 }
    }
}

/// The change of a customer's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub orders: i64,
    pub spent: i64,
    pub cancelled: i64,
    pub returns: i64,
    pub refunded: i64,
    /// The earliest and latest completion among orders that started counting.
    pub first_counted: Option<i64>,
    pub last_counted: Option<i64>,
    /// An order stopped counting: first/last order times must be recomputed.
    pub uncounted: bool,
}

impl Delta {
    /// The change when one order goes from `old` to `new`.
    pub fn between(old: &OrderState, new: &OrderState) -> Delta {
        let started = new.counts() && !old.counts();
        Delta {
            orders: i64::from(new.counts()) - i64::from(old.counts()),
            spent: new.contribution() - old.contribution(),
            cancelled: i64::from(new.cancelled_at.is_some()) - i64::from(old.cancelled_at.is_some()),
            returns: new.return_count - old.return_count,
            refunded: new.refunded_minor - old.refunded_minor,
            first_counted: if started { new.completed_at } else { None },
            last_counted: if started { new.completed_at } else { None },
            uncounted: old.counts() && !new.counts(),
        }
    }

    /// Both changes together.
    pub fn add(&mut self, other: &Delta) {
        self.orders += other.orders;
        self.spent += other.spent;
        self.cancelled += other.cancelled;
        self.returns += other.returns;
        self.refunded += other.refunded;
        self.first_counted = min_some(self.first_counted, other.first_counted);
        self.last_counted = self.last_counted.max(other.last_counted);
        self.uncounted |= other.uncounted;
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A customer's figures as read (and locked) at the start of a batch, moved
/// by each accepted event: what the 64-bit totals are checked against.
#[derive(Debug, Clone)]
pub struct Locked {
    pub currency: Option<String>,
    pub spent: i64,
    pub refunded: i64,
}

/// Applies `event` (of `event_id`, for `customer`'s order `order_id`) to its
/// order and its customer's figures in memory, or says why the event is
/// refused: the order belongs to another customer, the customer's totals are
/// in another currency, refunds would exceed the order, or a total would
/// overflow.
pub fn accept(
    event_id: &str,
    customer: &str,
    order_id: &str,
    event: &OrderEvent,
    orders: &mut HashMap<String, (String, OrderState)>,
    locked: &mut HashMap<String, Locked>,
) -> Result<Delta, String> {
    let currency = event.currency();
    let (owner, old) = orders.get(order_id).cloned().unwrap_or_else(|| (customer.to_owned(), OrderState::default()));
    if owner != customer {
        tracing::warn!(event.id = %event_id, order = %order_id, owner = %owner, customer = %customer, "order claimed by a second customer");
        return Err(format!("customer_id: order {order_id} belongs to customer {owner}, not {customer}"));
    }
    let figures = locked.get_mut(customer).ok_or_else(|| format!("customer_id: customer {customer} was not locked"))?;
    if let Some(existing) = &figures.currency
        && existing != currency
    {
        return Err(refuse(customer, existing, currency));
    }
    let new = old.apply(event)?;
    let delta = Delta::between(&old, &new);
    let spent = figures.spent.checked_add(delta.spent);
    let refunded = figures.refunded.checked_add(delta.refunded);
    let (Some(spent), Some(refunded)) = (spent, refunded) else {
        return Err(format!("customer {customer}: total spent or refunded would overflow 64 bits"));
    };
    *figures = Locked { currency: Some(currency.to_owned()), spent, refunded };
    orders.insert(order_id.to_owned(), (owner, new));
    Ok(delta)
}

fn refuse(customer: &str, existing: &str, currency: &str) -> String {
    format!("customer {customer} has orders in {existing}; an order in {currency} cannot be added to its totals")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(amount: i64, at: i64) -> OrderEvent {
        OrderEvent::Completed { currency: "EUR".into(), amount, at }
    }
    fn cancelled(amount: i64) -> OrderEvent {
        OrderEvent::Cancelled { currency: "EUR".into(), amount, at: 99 }
    }
    fn returned(refund: i64) -> OrderEvent {
        OrderEvent::Returned { currency: "EUR".into(), refund }
    }

    /// Every permutation of the events ends in the same state, and the
    /// deltas along the way add up to the final contribution.
    #[test]
    fn any_arrival_order_gives_the_same_state_and_the_deltas_add_up() {
        let events = [completed(1000, 5), returned(300), cancelled(1000), returned(600)];
        let mut finals = Vec::new();
        // Every order of the four events: the 4-digit base-4 numbers with distinct digits.
        for code in 0..256usize {
            let order = [code % 4, code / 4 % 4, code / 16 % 4, code / 64];
            if (0..4).any(|i| !order.contains(&i)) {
                continue;
            }
            let mut state = OrderState::default();
            let mut total = Delta::default();
            for i in order {
                let next = state.apply(&events[i]).unwrap();
                total.add(&Delta::between(&state, &next));
                state = next;
            }
            assert_eq!(total.spent, state.contribution());
            assert_eq!(total.orders, i64::from(state.counts()));
            finals.push(state);
        }
        assert_eq!(finals.len(), 24);
        assert!(finals.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn refunds_beyond_the_amount_are_refused_whichever_arrives_last() {
        let state = OrderState::default().apply(&completed(1000, 5)).unwrap();
        let refunded = state.apply(&returned(600)).unwrap();
        assert_eq!(Delta::between(&state, &refunded).spent, -600);
        assert!(refunded.apply(&returned(500)).unwrap_err().contains("exceed"));
        // A return that arrived first, bigger than the amount that follows.
        let early = OrderState::default().apply(&returned(1500)).unwrap();
        assert!(early.apply(&completed(1000, 5)).is_err());
        let full = OrderState { refunded_minor: i64::MAX, ..OrderState::default() };
        assert!(full.apply(&returned(1)).unwrap_err().contains("overflow"));
        assert_eq!(state.apply(&completed(1000, 7)).unwrap(), state, "the same order completed again");
    }

    fn locked(customer: &str, currency: Option<&str>, spent: i64) -> HashMap<String, Locked> {
        let figures = Locked { currency: currency.map(str::to_owned), spent, refunded: 0 };
        HashMap::from([(customer.to_owned(), figures)])
    }

    #[test]
    fn an_order_has_one_owner() {
        let mut orders = HashMap::new();
        let mut customers = locked("c-1", None, 0);
        customers.extend(locked("c-2", None, 0));
        assert!(accept("e1", "c-1", "o-1", &completed(1000, 5), &mut orders, &mut customers).is_ok());
        let refused = accept("e2", "c-2", "o-1", &returned(100), &mut orders, &mut customers).unwrap_err();
        assert_eq!(refused, "customer_id: order o-1 belongs to customer c-1, not c-2");
        assert_eq!(customers["c-2"].spent, 0, "a refused event moves nothing");
    }

    #[test]
    fn a_customer_has_one_currency_and_totals_within_64_bits() {
        let mut orders = HashMap::new();
        let mut customers = locked("c-1", Some("USD"), 0);
        let refused = accept("e1", "c-1", "o-1", &completed(1000, 5), &mut orders, &mut customers).unwrap_err();
        assert!(refused.contains("has orders in USD"), "{refused}");
        let mut customers = locked("c-1", Some("EUR"), i64::MAX - 10);
        let refused = accept("e2", "c-1", "o-2", &completed(1000, 5), &mut orders, &mut customers).unwrap_err();
        assert!(refused.contains("overflow"), "{refused}");
        assert!(!orders.contains_key("o-2"), "a refused order is not kept");
    }

    #[test]
    fn refunds_stay_within_the_order() {
        let mut orders = HashMap::new();
        let mut customers = locked("c-1", None, 0);
        let accepted = accept("e1", "c-1", "o-1", &completed(1000, 5), &mut orders, &mut customers);
        assert_eq!(accepted.map(|d| d.spent), Ok(1000));
        assert!(accept("e2", "c-1", "o-1", &returned(600), &mut orders, &mut customers).is_ok());
        assert!(accept("e3", "c-1", "o-1", &returned(600), &mut orders, &mut customers).is_err());
        // Spent is net of refunds.
        assert_eq!((customers["c-1"].spent, customers["c-1"].refunded), (400, 600));
    }
}
