"""The `redeliver` command: the top-level parser, one subcommand per module, and the dispatch.

    status               queues, outbox, claims held (stale ones) and the latest attempts
    trace IM…            a message's receipts and its whole retry chain, as a timeline
    stats [--hours N]    receipts, failures, retries, recoveries and give-ups over a window
    redrive [--spill] [--yes] [--by-hand]
                         move RetryDLQ back onto RetryQueue (SpillDLQ onto SpillQueue)
    configure-webhook    point a Conversation Service's post-event webhook at the stack
    reconcile IM… | --stuck-for 2h [--dry-run]
                         ask Twilio's Receipts API now and record what it reports
    policy check FILE [--to +E164] [--at ISO] [--retention-days N]
                         validate a RetryPolicy document (no stack needed) and show, for sample
                         failures, what it would do (`make policy-check FILE=...`)
    suppressions check|remove +E164
                         is a number suppressed (policy v2 `suppress`), and lift it
    send-receipt --status S [--error-code N] [--message IM…] [--url URL]
                         post one signed delivery receipt to the stack (deployed or offline)
    smoke [--service IS…] [--url URL]
                         after a deploy: the secret and Twilio's answer to it, a signed test
                         receipt through the webhook into the table, the alarms, the services'
                         webhooks; one line per check, exit code 1 if one fails

argparse answers --help, and a usage error (unknown command, missing argument, a malformed SID,
number or window, arguments that exclude each other) with the command's usage and exit code 2; a
command that cannot do what it was asked says why on stderr with exit code 1
(redeliver_cli.arguments holds the rule and the checks).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from twilio.base.exceptions import TwilioException

from redeliver.adapters.twilio.conversations import TwilioError
from redeliver_cli import (
    policy,
    reconcile,
    redrive,
    send_receipt,
    smoke,
    stats,
    status,
    suppressions,
    trace,
    webhook,
)
from redeliver_cli.endpoint import use_endpoint
from redeliver_cli.stack import CommandError, UsageError

PROG = "redeliver"
COMMANDS = (
    status,
    trace,
    stats,
    redrive,
    webhook,
    reconcile,
    policy,
    suppressions,
    send_receipt,
    smoke,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Operate a Redeliver stack.",
        epilog="Against the offline stack: --endpoint-url <moto URL> --stack redeliver-local",
    )
    top.add_argument(
        "--stack",
        default=os.environ.get("REDELIVER_STACK", "redeliver"),
        help="CloudFormation stack name (default: $REDELIVER_STACK or redeliver)",
    )
    top.add_argument(
        "--region",
        help="AWS region (default: the AWS SDK's; us-east-1 with a loopback --endpoint-url)",
    )
    top.add_argument(
        "--endpoint-url",
        help="an AWS endpoint to use instead (moto, offline). On this machine (localhost, "
        "127.0.0.1, ::1) the region defaults to us-east-1 and, when none are configured, "
        "dummy credentials are used: moto checks neither",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    for command_parser in commands.choices.values():
        # a UsageError is said as argparse says its own: the command's usage, exit code 2
        command_parser.set_defaults(usage_error=command_parser.error)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point (pyproject's [project.scripts]): the exit code."""
    args = parser().parse_args(argv)
    use_endpoint(args.endpoint_url, args.region)
    run: Callable[[argparse.Namespace], list[str]] = args.run
    try:
        lines = run(args)
    except UsageError as error:
        usage_error: Callable[[str], NoReturn] = args.usage_error
        usage_error(str(error))
    except CommandError as error:
        if error.output:
            print("\n".join(error.output))
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError, TwilioException, TwilioError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
