"""The command line: parses options, calls the library, maps errors to exit codes."""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import gc
import inspect
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from tracelog import __version__
from tracelog.errors import ExitStatus, OutputError, TracelogError, UsageError
from tracelog.output import Output, OutputFormat, open_output, redacted
from tracelog.output.format import RECORDS
from tracelog.pipeline import RunStats
from tracelog.reading import DOCKER, Reading, packet_filter
from tracelog.sources import STDIN
from tracelog.wording import escape_controls, plural

if TYPE_CHECKING:
    from tracelog.records.packet import PacketRecord
    from tracelog.rules.manage import Plan


_HELP = """Readable netfilter TRACE output: one timeline per packet.

Examples:

\b
    sudo tracelog enable icmp --container nginx-2
    tail -f /var/log/syslog | tracelog parse
    xtables-monitor --trace | tracelog parse
    tracelog summary --src 172.18.0.2 --dst 172.18.0.3 /var/log/kern.log
    sudo tracelog disable

Each command's --help has more.
"""
_EXIT_STATUS = """Exit status:

\b
    0    every TRACE line was understood
    1    an unexpected error (--traceback shows it)
    2    bad options or arguments
    3    an input could not be read (the others were still analysed)
    4    some TRACE lines could not be parsed (listed on stderr)
    5    changing the firewall needs root (CAP_NET_ADMIN)
    6    a tool, library or daemon tracelog needs is missing
    7    tracelog doctor found a problem that keeps traces from showing
    8    the output could not be written
    130  interrupted (Ctrl-C; SIGTERM/SIGHUP for watch)
    143  SIGTERM during summary, after printing what it read
"""

app = typer.Typer(
    help=_HELP,
    epilog=_EXIT_STATUS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class SummaryTable(enum.StrEnum):
    flows = "flows"
    rules = "rules"
    drops = "drops"
    packets = "packets"
    services = "services"


class _Settings:
    """Global flags read by `main`, outside the command's context."""

    traceback = False


P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
U = TypeVar("U")


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken like Ctrl-C (what was read is still reported), ending with 143."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """While reading, SIGTERM interrupts as Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the exit flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _ends_quietly(command: Callable[P, R]) -> Callable[P, R]:
    """Ctrl-C and a closed pipe (`| head`) end a command without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except Terminated:
            raise typer.Exit(ExitStatus.TERMINATED) from None
        except KeyboardInterrupt:
            raise typer.Exit(ExitStatus.INTERRUPTED) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(ExitStatus.OK) from None

    return wrapper


def _show_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"tracelog {__version__}")
        raise typer.Exit(ExitStatus.OK)


@app.callback()
def _global(
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the Python traceback of an error (given anywhere).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_show_version, help="Show the version and exit.")
    ] = False,
) -> None:
    """The options every command takes: `main` reads --traceback wherever it stands, --version answers at once."""


RedactOption = Annotated[
    bool, typer.Option("--redact", help="Replace addresses, MACs, host and container names consistently, to share it.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace what --output names (written before).")]
FilesArgument = Annotated[
    list[str] | None,
    # described in the commands' help: typer would print a Python type beside it
    typer.Argument(
        metavar="FILE", help="Log files (plain or .gz); - or none for stdin.", show_default=False, hidden=True
    ),
]
IdleOption = Annotated[
    float,
    typer.Option(metavar="SECONDS", help="Seconds a live stream may stay silent before open packets print.", min=0.05),
]
YearOption = Annotated[
    int | None,
    typer.Option(metavar="YEAR", min=1970, max=9999, help="Year for syslog time stamps that have none [default: now]."),
]
StrictOption = Annotated[bool, typer.Option(help="Stop at the first TRACE line that cannot be parsed.")]
JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        min=1,
        help="Processes that read one big plain file together [default: one per CPU].",
    ),
]
RulesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--rules", metavar="FILE", help="iptables-save / ip6tables-save snapshot taken while tracing (repeatable)."
    ),
]
NamesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--names",
        metavar="FILE|docker|podman|kubernetes",
        help="docker or podman inspect / network inspect, or kubectl get pods/svc/endpointslices -o json output "
        "(repeatable); or 'docker', 'podman' or 'kubernetes' to ask the running service or kubectl.",
    ),
]
SrcOption = Annotated[str | None, typer.Option("--src", metavar="ADDR[/LEN]", help="Source address or network.")]
DstOption = Annotated[str | None, typer.Option("--dst", metavar="ADDR[/LEN]", help="Destination address or network.")]
ProtoFilter = Annotated[
    str | None, typer.Option("--proto", metavar="NAME", help="Only packets of this protocol (tcp, udp, icmp, …).")
]
PortFilter = Annotated[
    int | None, typer.Option("--port", metavar="N", min=0, max=65535, help="Only packets to or from this port.")
]
VerdictFilter = Annotated[
    str | None,
    typer.Option("--verdict", metavar="VERDICT", help="Only packets with this verdict (ACCEPT, DROP, …, unknown)."),
]
ChainFilter = Annotated[
    str | None,
    typer.Option("--chain", metavar="[TABLE:]CHAIN", help="Only packets that crossed this chain (or table:chain)."),
]
NameFilter = Annotated[
    str | None, typer.Option("--name", metavar="CONTAINER", help="Only packets to, from or through this container.")
]


def _file_reading(
    files: FilesArgument = None,
    idle: IdleOption = 1.0,
    year: YearOption = None,
    strict: StrictOption = False,
    jobs: JobsOption = None,
    rules: RulesOption = None,
    names: NamesOption = None,
    src: SrcOption = None,
    dst: DstOption = None,
    proto: ProtoFilter = None,
    port: PortFilter = None,
    verdict: VerdictFilter = None,
    chain: ChainFilter = None,
    name: NameFilter = None,
) -> Reading:
    """What parse, summary and report read: the files (stdin when none), what explains them, which packets to keep."""
    wanted = packet_filter(src=src, dst=dst, proto=proto, port=port, verdict=verdict, chain=chain, name=name)
    return Reading(files or [STDIN], rules or [], names or [], wanted, idle, year, strict, jobs, say=_say)


def _reads_traces(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the reading options, defined once in `_file_reading`; it takes their `Reading` as `reading`.

    typer reads a command's options from its signature: the one shown here is
    the FILE argument, the command's own options, then the shared ones.
    """
    shared = inspect.signature(_file_reading, eval_str=True).parameters
    own = inspect.signature(command, eval_str=True).parameters
    files, *rest = shared.values()
    options = [files, *(option for name, option in own.items() if name != "reading"), *rest]

    @functools.wraps(command)
    def wrapper(**given: Any) -> None:
        reading = _file_reading(**{name: given.pop(name) for name in shared})
        command(**given, reading=reading)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [option.replace(kind=inspect.Parameter.KEYWORD_ONLY) for option in options]
    )
    return wrapper


def _run(reading: Reading, output: Output[T, U]) -> None:
    """Write what the output shows, then the run summary on stderr; exit as the run went."""
    stats = RunStats()
    inputs = len(reading.files() or [STDIN])
    try:
        output.write(reading.read(stats, output.format))
        sys.stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        _print_summary(stats, inputs)  # an interrupted live run still says what it read
        raise
    except OSError as error:
        _print_summary(stats, inputs)
        _quiet_stdout()  # what is still buffered cannot be written either
        raise OutputError(f"cannot write the output: {error.strerror or error}") from error
    _print_summary(stats, inputs)
    if stats.unreadable:
        raise typer.Exit(ExitStatus.INPUT)
    if stats.bad:
        raise typer.Exit(ExitStatus.BAD_LINES)


@app.command(short_help="Turn TRACE output into one timeline per packet.")
@_ends_quietly
@_reads_traces
def parse(
    *,
    reading: Reading,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    directory: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="DIR", help="Directory for --format parquet (steps/, packets/)."),
    ] = None,
    force: ForceOption = False,
    redact: RedactOption = False,
) -> None:
    """Turn TRACE output into one timeline per packet.

    Reads each FILE (plain or .gz; - or none: stdin): kernel logs (dmesg,
    syslog, kern.log, journalctl -k), xtables-monitor --trace, nft monitor
    trace and ulogd output, live from a pipe or from saved files.

    Examples:

    \b
        tail -f /var/log/syslog | tracelog parse
        tracelog parse --format jsonl /var/log/kern.log /var/log/kern.log.2.gz
        tracelog parse --rules iptables-save.txt --names docker --verdict DROP kern.log
        tracelog parse --format parquet --output trace.parquet kern.log.*.gz
        tracelog parse --redact kern.log > to-share.txt
    """
    out = open_output(output, directory, force)
    if redact:  # one process, so that each value's token is given in the order values appear
        reading, out = replace(reading, jobs=1), _redacted(out, reading)
    _run(reading, out)


@app.command(short_help="Flows, drops by rule, rules hit, and why A cannot reach B.")
@_ends_quietly
@_reads_traces
def summary(
    *,
    reading: Reading,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    table: Annotated[SummaryTable, typer.Option(help="Which table --format csv writes.")] = SummaryTable.flows,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            metavar="SECONDS",
            min=0.1,
            help="On a live stream, print the summary so far every SECONDS (as packets arrive).",
        ),
    ] = None,
) -> None:
    """Summarise a trace: flows, rule hits, drops ranked by rule, and why A cannot reach B.

    Reads each FILE (plain or .gz; - or none: stdin) as `tracelog parse` does.

    Examples:

    \b
        tracelog summary --rules iptables-save.txt kern.log
        tracelog summary --src 172.18.0.2 --dst 172.18.0.3 --rules iptables-save.txt kern.log
        tracelog summary --format csv --table drops kern.log
    """
    from tracelog.analyse import Summary
    from tracelog.output import summary as shown
    from tracelog.output.text import stdout_console

    if output is OutputFormat.parquet:
        raise UsageError("summary writes table, jsonl or csv", hint="parse --format parquet writes the data")

    def show(found: Summary) -> None:
        report = found.report()
        if output is OutputFormat.jsonl:
            shown.write_summary_jsonl(report, sys.stdout)
        elif output is OutputFormat.csv:
            shown.write_summary_csv(report, table.value, sys.stdout)
        else:
            shown.print_summary(report, stdout_console())
        sys.stdout.flush()

    def show_so_far(found: Summary) -> None:
        _say(f"the summary so far: {plural(len(found.packets), 'packet')}")
        show(found)

    def write(records: Iterator[PacketRecord]) -> None:
        found = Summary()
        try:
            with _shown_every(every, lambda: show_so_far(found), lambda: len(found.packets)) as lock:
                for record in records:
                    with lock:
                        found.add(record)
        except KeyboardInterrupt as stop:
            _say(f"interrupted ({stop.args[0] if stop.args else 'SIGINT'}): the summary of what was read until then")
            show(found)
            raise
        show(found)

    with _terminated_as_interrupt():
        _run(reading, Output(RECORDS, write))


@contextlib.contextmanager
def _shown_every(seconds: float | None, show: Callable[[], None], count: Callable[[], int]) -> Iterator[threading.Lock]:
    """Call `show` every `seconds` while the block runs, when `count` changed since; the block adds under the lock.

    A live stream can stay quiet for hours: a timer, not the next packet,
    decides when the summary so far is printed.
    """
    lock, stop = threading.Lock(), threading.Event()

    def run(shown: int = 0) -> None:
        while seconds is not None and not stop.wait(seconds):
            with lock:
                if count() != shown:
                    shown = count()
                    show()

    timer = threading.Thread(target=run, daemon=True)
    timer.start()
    try:
        yield lock
    finally:
        stop.set()
        timer.join()


def _redacted(output: Output[T, U], reading: Reading) -> Output[T, U]:
    """The output with addresses, MACs, host and container names replaced (see `tracelog.output.redact`)."""
    from tracelog.output.redact import Redactor

    redactor = Redactor.from_names(reading.load_names()) if reading.names else Redactor()
    return redacted(output, redactor.record)


def _print_summary(stats: RunStats, inputs: int) -> None:
    from tracelog.output.notes import summary_lines

    for line in summary_lines(stats, inputs):
        _echo(line, err=True)


# Only a write meets these: help, --version or a command's lines to a full disk (or past a quota or size limit).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# A big log makes millions of short-lived objects, few of them in cycles: at
# the default threshold (700) the cycle collector runs every few lines and takes
# about 8 % of a parse; this still collects the rare cycles (a bad line's
# exception) within a few hundred lines.
_GC_YOUNG_THRESHOLD = 20_000


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every user error is one line on stderr and an `ExitStatus`."""
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    args = list(sys.argv[1:] if argv is None else argv)
    _Settings.traceback = "--traceback" in args[: args.index("--") if "--" in args else len(args)]
    if _Settings.traceback:
        args.remove("--traceback")  # taken wherever it stands, not only before the command
    if sys.stdout is None:  # started with its standard output closed (`>&-`): nothing it prints could be written
        if sys.stderr is not None:
            _echo("tracelog: cannot write the output: standard output is closed", err=True)
        return ExitStatus.OUTPUT
    try:
        status = app(args=args, prog_name="tracelog", standalone_mode=False)
    except typer.TyperException as error:
        message = error.format_message()
        if message.startswith("Usage: "):  # `tracelog` alone: the help is the answer
            typer.echo(message, err=True)
        else:
            _echo(f"tracelog: {plain_usage_error(error, args)}", err=True)
        return ExitStatus.USAGE
    except typer.Abort:
        return ExitStatus.INTERRUPTED
    except TracelogError as error:
        if _Settings.traceback:
            raise
        _echo(f"tracelog: {error}", err=True)
        return int(error.status)
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS or _Settings.traceback:
            raise
        _quiet_stdout()  # what is still buffered cannot be written either
        _echo(f"tracelog: cannot write the output: {error.strerror}", err=True)
        return ExitStatus.OUTPUT
    return status if isinstance(status, int) else ExitStatus.OK


# What the option parser says, in plain words: pydantic's phrases and click's quoting go.
_PLAIN_REASONS = (
    (re.compile(r"Value error, '(.*)' is not one of (.*?)\.?$"), lambda m: "one of " + m[2].replace("'", "")),
    (re.compile(r"Input should be a valid integer.*"), lambda m: "a whole number"),
    (re.compile(r"Input should be a valid number.*"), lambda m: "a number"),
    (re.compile(r"Input should be less than or equal to (\S+)"), lambda m: f"at most {m[1]}"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), lambda m: f"at least {m[1]}"),
    (re.compile(r"Input should be greater than (\S+)"), lambda m: f"more than {m[1]}"),
)


def plain_usage_error(error: typer.TyperException, args: Sequence[str]) -> str:
    """`invalid value for --year: 99999 (at most 9999)`: the option, the value given, and what it takes."""
    option = getattr(error, "option_name", None)  # click's NoSuchOption, which typer does not export
    if isinstance(option, str):
        return f"no such option: {option} (see tracelog --help)"
    if not isinstance(error, typer.BadParameter) or error.param is None:
        return f"{error.format_message()} (see tracelog --help)"
    names = [*error.param.opts, *error.param.secondary_opts]
    name = next((option for option in names if option.startswith("--")), names[0] if names else "argument")
    reason = str(error.message)
    for pattern, plain in _PLAIN_REASONS:
        if found := pattern.match(reason):
            reason = plain(found)
            break
    given = _given_value(args, names)
    if given is None:
        return f"invalid value for {name} ({reason})"
    shown = given if re.fullmatch(r"-?[\d.]+", given) else repr(given)
    return f"invalid value for {name}: {shown} ({reason})"


def _given_value(args: Sequence[str], names: Sequence[str]) -> str | None:
    """The value the command line gave an option (`--year 9`, `--year=9`), the last if it repeats."""
    found = None
    for at, arg in enumerate(args):
        for name in names:
            if arg == name and at + 1 < len(args):
                found = args[at + 1]
            elif arg.startswith(f"{name}="):
                found = arg.split("=", 1)[1]
    return found


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())


# -- Tracing rules: enable, watch, status, disable, doctor -----------------------------------


class TraceProto(enum.StrEnum):
    icmp = "icmp"
    tcp = "tcp"
    udp = "udp"
    icmpv6 = "icmpv6"
    all = "all"


class BackendChoice(enum.StrEnum):
    auto = "auto"
    legacy = "legacy"
    nft = "nft"


ProtoArgument = Annotated[TraceProto, typer.Argument(metavar="PROTO", help="Protocol to trace.", show_default=False)]
SportOption = Annotated[
    int | None, typer.Option("--sport", metavar="PORT", min=1, max=65535, help="Source port (tcp, udp).")
]
DportOption = Annotated[
    int | None, typer.Option("--dport", metavar="PORT", min=1, max=65535, help="Destination port (tcp, udp).")
]
IfaceOption = Annotated[
    str | None, typer.Option("--iface", metavar="IFACE", help="Interface: input in PREROUTING, output in OUTPUT.")
]
ContainerOption = Annotated[
    str | None,
    typer.Option(
        "--container",
        metavar="NAME",
        help="A running Docker container: its address fills --src or --dst (both ways if neither is set).",
    ),
]
Ipv6Option = Annotated[bool, typer.Option("-6", "--ipv6", help="Trace IPv6 (ip6tables).")]
ForOption = Annotated[
    str, typer.Option("--for", metavar="DURATION", help="Expiry enforced by the kernel: 30s, 5m, 1h30m, or none.")
]
LimitOption = Annotated[
    str, typer.Option("--limit", metavar="RATE", help="Rate limit of each rule: 10/second, 5/minute, or none.")
]
BackendOption = Annotated[
    BackendChoice, typer.Option("--backend", help="auto follows the backend that holds this host's rules.")
]


@app.command(short_help="Install tagged TRACE rules for the packets you name.")
@_ends_quietly
def enable(
    proto: ProtoArgument,
    *,
    src: SrcOption = None,
    dst: DstOption = None,
    sport: SportOption = None,
    dport: DportOption = None,
    iface: IfaceOption = None,
    container: ContainerOption = None,
    ipv6: Ipv6Option = False,
    duration: ForOption = "1h",
    limit: LimitOption = "10/second",
    backend: BackendOption = BackendChoice.auto,
) -> None:
    """Install TRACE rules for the packets you name, in raw PREROUTING and raw OUTPUT.

    Uses the iptables backend this host's rules live in (or --backend) and
    says why.  Every rule carries a "tracelog:" comment, is rate-limited
    (10/second unless --limit) and stops matching in the kernel after --for
    (1h unless --for none), even if tracelog is killed.  Enabling the same
    match again adds nothing (a new --for or --limit replaces the old rule).
    With --container and neither --src nor --dst, traffic to the container
    and from it is traced (from it the ports are mirrored: --dport 80
    becomes --sport 80).  Prints each rule installed, where this host puts
    the trace and the command that reads it; the ruleset is saved to
    $TRACELOG_STATE_DIR (default /var/lib/tracelog).

    Examples:

    \b
        tracelog enable icmp --dst 172.18.0.3
        tracelog enable tcp --container nginx-2 --dport 80 --for 10m
    """
    from tracelog.rules import manage
    from tracelog.rules.spec import TraceRequest

    now = manage.utc_now()
    request = TraceRequest(proto.value, src, dst, sport, dport, iface, container, ipv6, duration, limit)
    plan = manage.plan_tracing(request, backend.value, now)
    report = manage.enable_tracing(plan, now, warnings=_warnings(plan))
    for line in report.lines():
        _echo(line)


@app.command(short_help="Enable, print packets live, remove the rules on exit.")
@_ends_quietly
def watch(
    proto: ProtoArgument,
    *,
    src: SrcOption = None,
    dst: DstOption = None,
    sport: SportOption = None,
    dport: DportOption = None,
    iface: IfaceOption = None,
    container: ContainerOption = None,
    ipv6: Ipv6Option = False,
    duration: ForOption = "1h",
    limit: LimitOption = "10/second",
    backend: BackendOption = BackendChoice.auto,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    directory: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="DIR", help="Directory for --format parquet (steps/, packets/)."),
    ] = None,
    force: ForceOption = False,
    idle: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Seconds without a new line before a packet is complete.", min=0.05),
    ] = 1.0,
    names: Annotated[
        list[str] | None,
        typer.Option(
            "--names",
            metavar="FILE|docker|podman|kubernetes",
            help="docker or podman inspect / network inspect, or kubectl get … -o json output (repeatable); or "
            "'docker', 'podman' or 'kubernetes' [default: the running Docker daemon, when it answers].",
        ),
    ] = None,
    verdict: VerdictFilter = None,
    chain: ChainFilter = None,
    name: NameFilter = None,
) -> None:
    """Trace live: enable, print each packet's timeline as it completes, remove the rules on exit.

    Takes the options of `tracelog enable`, and reads as `tracelog parse`
    does: container names from the Docker daemon (or --names), the filters
    --verdict, --chain and --name, every --format.  Reads /dev/kmsg (legacy)
    or `xtables-monitor --trace` (nft) from now on, with the ruleset snapshot
    taken at start naming the rules behind legacy rule numbers.  Ctrl-C,
    SIGINT, SIGTERM and SIGHUP stop it and remove exactly the rules it added;
    if it is killed outright, the kernel still stops them after --for.

    Examples:

    \b
        tracelog watch icmp --container nginx-2
        tracelog watch tcp --dport 80 --for 5m --format jsonl --verdict DROP
    """
    from tracelog.rules import live, manage
    from tracelog.rules.spec import TraceRequest

    now = manage.utc_now()
    request = TraceRequest(proto.value, src, dst, sport, dport, iface, container, ipv6, duration, limit)
    plan = manage.plan_tracing(request, backend.value, now)
    wanted = packet_filter(verdict=verdict, chain=chain, name=name)
    out = open_output(output, directory, force)
    with live.watching(plan, now, say=_say, warnings=_warnings(plan)) as session:
        for line in session.report.watch_lines():
            _say(line)
        snapshot = [str(path) for path in session.report.rule_files(plan.choice.backend)]
        lines = session.source.lines(idle / 4)
        reading = Reading(lines, snapshot, names or [DOCKER], wanted, idle, say=_say, names_optional=not names)
        _run(reading, out)


def _warnings(plan: Plan) -> list[str]:
    """What the doctor finds that will keep the planned trace from showing."""
    from tracelog import doctor

    return doctor.tracing_warnings(plan.facts, plan.choice.backend, plan.families)


def _echo(line: str, *, err: bool = False) -> None:
    """Text for the user, line by line with control characters escaped: it may quote a log, a comment, a name."""
    typer.echo("\n".join(map(escape_controls, line.split("\n"))), err=err)


def _say(line: str) -> None:
    _echo(f"tracelog: {line}", err=True)


@app.command(short_help="List tracelog's TRACE rules and the others.")
@_ends_quietly
def status(backend: BackendOption = BackendChoice.auto) -> None:
    """List tracelog's TRACE rules with their time left, and TRACE rules tracelog did not install.

    Rules whose --for ran out are removed first.  Rules without tracelog's
    tag are only reported, never touched.  Lists the ruleset snapshots kept.

    Examples:

    \b
        tracelog status
    """
    from tracelog.rules import manage

    for line in manage.status_lines(backend.value, manage.utc_now()):
        _echo(line)


@app.command(short_help="Remove every TRACE rule tracelog installed.")
@_ends_quietly
def disable(backend: BackendOption = BackendChoice.auto) -> None:
    """Remove every TRACE rule tracelog installed, each by exact match; nothing else is touched.

    Then the nf_tables raw table and chains tracelog created for them go,
    once they are empty.  A tagged rule someone changed since is reported
    and left in place.

    Examples:

    \b
        tracelog disable
        ip netns exec blue tracelog disable --backend legacy
    """
    from tracelog.rules import manage

    for line in manage.disable_lines(backend.value):
        _echo(line)


class ReportFormat(enum.StrEnum):
    html = "html"
    svg = "svg"


@app.command(short_help="One self-contained HTML page showing where each packet went.")
@_ends_quietly
@_reads_traces
def report(
    *,
    reading: Reading,
    target: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="FILE", help="The page (or SVG) to write; - or none: stdout."),
    ] = None,
    output: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="html: the page; svg: one packet's diagram (with --packet)."),
    ] = ReportFormat.html,
    packet: Annotated[
        int | None,
        typer.Option("--packet", metavar="N", min=1, help="The packet --format svg draws (as parse numbers it)."),
    ] = None,
    redact: RedactOption = False,
    title: Annotated[
        str | None, typer.Option("--title", metavar="TEXT", help="The page's title [default: the inputs' names].")
    ] = None,
    force: ForceOption = False,
) -> None:
    """Write one self-contained HTML page showing where each packet went.

    Reads each FILE (plain or .gz; - or none: stdin) as `tracelog parse`
    does.  The page holds the summary, then each packet drawn across
    netfilter's hooks and tables with its rules, NAT rewrites and verdict;
    it loads nothing from outside and opens offline.  --redact replaces
    addresses, MACs, host and container names (the same value by the same
    token) and keeps rules, chains and verdicts.

    Examples:

    \b
        tracelog report --rules iptables-save.txt --names docker kern.log -o trace.html
        tracelog report --redact --verdict DROP kern.log -o to-share.html
        tracelog report --packet 3 --format svg kern.log -o packet-3.svg
    """
    from tracelog.output.report import Redactor, report_target, write_report

    if (output is ReportFormat.svg) != (packet is not None):
        raise UsageError("--format svg draws one packet", hint="give --packet N with --format svg, and only then")
    destination = report_target(target, force=force)
    redactor = Redactor.from_names(reading.load_names()) if redact and reading.names else None
    inputs = ", ".join(reading.files() or ["stdin"])

    def write(records: Iterator[PacketRecord]) -> None:
        shown_title = title or (None if redact else inputs)
        write_report(records, destination, title=shown_title, redact=redact, redactor=redactor, packet=packet)

    with _terminated_as_interrupt():
        _run(reading, Output(RECORDS, write))


@app.command(short_help="Explain why a trace may show nothing here.")
@_ends_quietly
def doctor(backend: BackendOption = BackendChoice.auto) -> None:
    """Explain why a trace may show nothing here, with the fix for each problem.

    Checks which iptables backends hold rules, the TRACE target, the nf_log
    binding per family, nf_log_all_netns outside the initial namespace,
    br_netfilter for bridged traffic, and where kernel messages end up.
    Exits 0 when tracing will work and 7 when it will not.

    Examples:

    \b
        tracelog doctor
        ip netns exec blue tracelog doctor --backend legacy
    """
    from tracelog import doctor as checks
    from tracelog.rules import host

    findings = checks.diagnose(host.probe_host(), backend.value)
    for finding in findings:
        _echo(f"{finding.level:<4}  {finding.check}: {finding.message}")
        if finding.fix and finding.level != "ok":
            _echo(f"      fix: {finding.fix}")
    failed = sum(finding.level == "fail" for finding in findings)
    if failed:
        _echo(f"tracing will not work here: {failed} problem{'s' if failed != 1 else ''} to fix")
        raise typer.Exit(ExitStatus.DOCTOR_FAILED)
    _echo("tracing should work here")
