"""`make chaos`: the offline stack under faults, and DESIGN.md's invariants checked over the result.

One command (python -m tools.chaos --help) runs the real template, handlers and Twilio's wire
format (tools.offline) while things go wrong as they do in production:

- Twilio answers creates with 429, a 5xx before storing the message, a 5xx *after* storing it, a
  withheld answer past the client's timeout (stored), or refuses the connection — at the rates
  given (the simulator's FaultRates);
- ingest and retry containers are killed mid-invocation (SIGKILL right before one of the
  invocation's AWS calls, as a runtime dying between two steps): SQS redelivers the batch, API
  Gateway answers the webhook 500, and Twilio, which never resends, has lost that webhook;
- webhooks are lost on the way (--lose-webhooks), duplicated and reordered; messages live in two
  Conversation Services; forged
  webhooks (unsigned, signed with another token, altered after signing) arrive among the real
  ones; the outbox sweeper and the reconciler run on short schedules, so a kill between ingest's
  write and its enqueue, and a failure whose webhook was lost, are recovered as in production.

How a lost webhook is accounted for: a webhook is lost for two causes, both counted — lost on the
way (never sent: the emitter's `dropped`, by status) and answered 5xx or not at all (the emitter's
`lost`, listed next to the ingest kills that caused them: ingest may answer 5xx exactly as many
times as it was killed, and not once more). Twilio's truth (the simulator's Receipts) is the
reference for both: every failure Twilio holds must be stored — by its webhook, or by the
reconciler asking Twilio about a receipt stuck at `sent` — and decided. A receipt none of whose
webhooks arrived is invisible to Redeliver (nothing stored, nothing at `sent` to ask about), as it
would be in production: counted in the report, not a violation.

The run exits 0 only when it settled and every invariant held: exactly one new message per
attempt, every failure decided or visible in the DLQ, no 5xx for valid input but the injected
kills, nothing stored for forged input, and every fault asked for injected.

The rooms, each importing only those above it (and tools.offline, whose stack, scenario, report
and checks a chaos run reuses):
    kills    which invocations are killed, and where (ChaosKills)
    config   what a run asks for (ChaosConfig, TwilioFaults), where it departs from the
             template (tuning), and what it injected (Chaos)
    twilio   the simulator's fault injection and second Conversation Service
    checks   the chaos invariants: nothing stored for forged input, every fault injected
    report   the chaos part of the report (judge), and the report computed again (recheck)
    run      the app's messages and the forged webhooks in (send), one run (run)
    cli      the command (main); __main__ runs it
"""
