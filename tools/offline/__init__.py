"""The whole of Redeliver on one machine: `make offline` (python -m tools.offline --help).

    moto server (own process) ← the real template.yaml, deployed by tools.stack
    local HTTP API :3000      ← the template's HttpApi events → the real ingest handler
    Lambda SQS pollers        ← the template's SQS events → the real retry handler
    schedules                 → SweepFunction and ReconcileFunction, time compressed
    Twilio simulator          ← the retry worker's and the reconciler's REST calls
    webhook emitter           → signed onDeliveryUpdated webhooks for every message, to :3000;
                                some lost on the way (--lose-webhooks), as Twilio never resends

The handlers are the deployed ones, each in its own process (a Lambda container: one invocation at
a time, its own environment and Powertools singletons): the only difference from AWS is where the
endpoints point. A scenario sends messages "from the app", waits until every failure
is decided, and checks DESIGN.md's invariants; the exit code says whether they held. Twilio's
truth (the simulator's Receipts) is the reference: every failure Twilio holds, its webhook lost or
not, must be decided, unless no webhook of its receipt ever arrived (nothing stored: invisible to
Redeliver, as in production).

The rooms, each importing only those above it:
    policy       the offline retry policy (the default's, compressed) and its notes
    tuning       where a run departs from the template (Tuning) and what it kills (KillPlan)
    runtime      the Lambda containers running the real handlers (Runtime)
    sources      the template's event sources: HTTP API, SQS pollers, schedules
    stack        the whole stack up and down (running → Offline)
    state        what the stack holds now: queues, pending and stuck receipts, Twilio's truth
    checks       DESIGN.md's invariants, each a Check
    whereabouts  what did not settle, where, and why
    report       collect and render a run's Report
    scenario     messages in until everything settles (run_scenario)
    cli          the command (main); __main__ runs it
"""
