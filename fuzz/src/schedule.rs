//! Schedule expressions: whatever a client sends is refused, or gives a
//! schedule whose next fire comes strictly after the instant asked, and
//! quickly (a cron that never matches ends its search).

use mayfly_schedule::Schedule;

#[test]
fn expressions_are_refused_or_fire_after_the_instant_asked() {
    bolero::check!().for_each(|input: &[u8]| {
        let text = String::from_utf8_lossy(input);
        let (expression, zone) = match text.split_once('|') {
            Some((e, z)) => (e, Some(z)),
            None => (&text[..], None),
        };
        let created = 1_700_000_000_000;
        if let Ok(schedule) = Schedule::new(expression, zone, None, None, created) {
            for after in [created, created + 86_400_000] {
                if let Some(next) = schedule.next_after(after) {
                    assert!(next > after, "{expression}: {next} <= {after}");
                }
            }
        }
    });
}
