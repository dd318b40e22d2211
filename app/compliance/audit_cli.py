"""``mip audit`` verification, signed checkpoints and exports (the rest is app/audit/cli.py).

Exit status: 0 verified; 1 something does not verify; 2 bad input (an unreadable bundle or
key file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.kit.cli import (
    CLI_ACTOR,
    cli_session,
    cli_sessionmaker,
    console,
    err_console,
    exit_on_error,
    print_json,
)

audit_app = typer.Typer(help="The hash-chained audit log: signed checkpoints and exports.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@audit_app.command("verify")
def verify(json_output: JsonOpt = False) -> None:
    """Recompute the chain and check every signed checkpoint and its anchor (exit 1 on a break).

    A checkpoint whose head is gone means entries were deleted; one whose head has another
    hash means the chain was rewritten.
    """
    from app.audit.service import verify_chain
    from app.compliance.checkpoints import open_signing_key, verify_checkpoints
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    settings = get_settings()
    signer = open_signing_key(settings)
    with exit_on_error(), cli_session() as session:
        report = verify_chain(session)
        keys = [signer.public_key] if signer.path.exists() else []
        status = verify_checkpoints(session, open_sample_store(settings), keys)
    ok = report.ok and status.ok
    if json_output:
        print_json(
            {
                "ok": ok,
                "entries": report.entries,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "head_hash": report.head_hash,
                "checkpoints": status.as_dict(),
            }
        )
    else:
        if report.ok:
            console.print(f"[green]Audit log verified:[/green] {report.entries} entries.")
            console.print(f"Head hash: {report.head_hash or '(empty log)'}", soft_wrap=True)
        else:
            err_console.print(
                f"[red]Audit log broken at entry {report.first_bad_seq}:[/red] {report.reason}."
            )
        if status.ok:
            console.print(
                f"Signed checkpoints: {status.checkpoints} in the log, {status.anchors} anchored, "
                "all verified."
            )
        for problem in status.problems:
            err_console.print(f"[red]Checkpoint:[/red] {problem}", soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint(json_output: JsonOpt = False) -> None:
    """Sign the chain's head, the sealed months and the store inventory now.

    `mip worker` does this every MIP_WORKER_CHECKPOINT_INTERVAL_SECONDS. Refused (exit 1) while
    the chain does not verify.
    """
    from app.compliance.checkpoints import create_checkpoint, open_signing_key
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    settings = get_settings()
    signer = open_signing_key(settings)
    with exit_on_error(), cli_session() as session:
        entry = create_checkpoint(session, open_sample_store(settings), signer, actor=CLI_ACTOR)
        payload: dict[str, Any] = entry.details["payload"]  # type: ignore[assignment]
        result = {
            "seq": entry.seq,
            "head_seq": payload["audit"]["head_seq"],
            "head_hash": payload["audit"]["head_hash"],
            "ledger_seals": len(payload["ledger_seals"]),
            "store_objects": payload["store"]["objects"],
            "key_id": signer.key_id,
        }
    if json_output:
        print_json(result)
    else:
        console.print(
            f"Checkpoint {result['seq']} signs entries 1 to {result['head_seq']} "
            f"({result['ledger_seals']} sealed months, {result['store_objects']} stored objects) "
            f"with {result['key_id']}."
        )


@audit_app.command("export")
def export(
    bundle: Annotated[Path, typer.Argument(help="The file to write, e.g. audit-2026-12.tar.gz.")],
    json_output: JsonOpt = False,
) -> None:
    """Sign a checkpoint, then write every entry up to it with a signed manifest.

    Give the bundle and `mip audit public-key` to the auditor; `mip audit verify-export`
    checks it anywhere, with no database.
    """
    from app.compliance.checkpoints import export_audit_log, open_signing_key
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    settings = get_settings()
    signer = open_signing_key(settings)
    with exit_on_error(), cli_sessionmaker() as factory:
        manifest = export_audit_log(
            factory, open_sample_store(settings), signer, bundle, actor=CLI_ACTOR
        )
    if json_output:
        print_json({"path": str(bundle), **manifest})
    else:
        console.print(
            f"Wrote {bundle}: {manifest['entries']} entries, head {manifest['head_seq']}, "
            f"signed with {manifest['key_id']}."
        )


@audit_app.command("verify-export")
def verify_export(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `mip audit export`.")],
    public_key: Annotated[
        list[Path],
        typer.Option(
            "--public-key",
            help="The operator's public key (PEM), from `mip audit public-key`. Repeat it for "
            "keys used before a rotation.",
        ),
    ],
    previous: Annotated[
        list[Path] | None,
        typer.Option("--previous", help="An earlier export whose head this one must still hold."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Check an export offline (no database, no configuration): every entry, every signed
    checkpoint and the signed manifest. Exit 1 names what was edited, deleted, reordered,
    truncated or rewritten."""
    from app.compliance.bundle import BundleError, verify_bundle
    from app.kit.crypto.signing import SigningKeyError, load_public_key

    try:
        keys = [load_public_key(path.read_bytes()) for path in public_key]
        report = verify_bundle(bundle, keys, previous=previous or [])
    except (OSError, SigningKeyError, BundleError) as error:
        err_console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from None
    if json_output:
        print_json(report.as_dict())
    elif report.ok:
        console.print(
            f"[green]Export verified:[/green] {report.entries} entries, "
            f"{report.checkpoints} signed checkpoints, head {report.head_seq}, "
            f"signed with {report.key_id}."
        )
    else:
        for problem in report.problems:
            err_console.print(f"[red]{problem.kind}:[/red] {problem.message}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("public-key")
def public_key(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the PEM here (default: stdout).")
    ] = None,
) -> None:
    """Print the public key that checks checkpoints, exports and signed reports (created with
    the signing key on first use)."""
    from app.compliance.checkpoints import open_signing_key
    from app.kit.settings import get_settings

    with exit_on_error():
        pem = open_signing_key(get_settings()).public_key_pem()
        if output is None:
            typer.echo(pem.decode(), nl=False)
        else:
            output.write_bytes(pem)
            err_console.print(f"Wrote {output}.")
