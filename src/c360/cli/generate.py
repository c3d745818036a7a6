"""`c360 generate`: write the ShopSmart demo world into the configured sources."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from sqlalchemy.engine import make_url

from c360.cli.main import AppContext, pass_app


@click.command("generate")
@click.option("--customers", type=int, help="Registered customers (default: simulator.customers).")
@click.option("--days", type=int, help="Days of history (default: simulator.days).")
@click.option(
    "--seed", type=int, help="World seed; same seed, same bytes (default: simulator.seed)."
)
@click.option(
    "--start-date",
    metavar="YYYY-MM-DD",
    help="First simulated day, UTC (default: simulator.start_date).",
)
@click.option(
    "--replace", is_flag=True, help="Drop and recreate the 4 tables of an orders DB that has rows."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_app
def command(
    app: AppContext,
    customers: int | None,
    days: int | None,
    seed: int | None,
    start_date: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Simulate the ShopSmart world and write the four sources plus ground truth.

    Writes the orders DB (sources.mysql.url), the Segment clickstream
    (sources.clickstream.path), Zendesk webhook events (sources.zendesk.path), the Mailchimp
    files (sources.mailchimp.dir) and the ground truth (simulator.truth_dir).
    """
    from c360.simulator import generate

    resolved = app.config(
        **{
            "simulator.customers": customers,
            "simulator.days": days,
            "simulator.seed": seed,
            "simulator.start_date": start_date,
        }
    )
    settings = resolved.settings
    summary = generate(settings, replace=replace)
    if as_json:
        click.echo(json.dumps(asdict(summary)))
        return
    sources = settings.sources
    db = make_url(sources.mysql.url).render_as_string(hide_password=True)
    s = summary
    click.echo(
        f"generated the ShopSmart world (seed {settings.simulator.seed}, "
        f"{settings.simulator.days} days from {settings.simulator.start_date}) in {s.seconds:.1f} s"
    )
    rows = (
        ("orders DB", db, f"{s.customers} customers, {s.products} products, {s.orders} orders "
         f"({s.guest_orders} guest), {s.order_items} order items"),
        ("clickstream", sources.clickstream.path, f"{s.clickstream_events} Segment messages"),
        ("zendesk", sources.zendesk.path,
         f"{s.zendesk_events} webhook events ({s.tickets} tickets)"),
        ("mailchimp", sources.mailchimp.dir, f"{s.mailchimp_members} members, {s.campaigns} "
         f"campaigns, {s.email_activity} email-activity rows"),
        ("truth", settings.simulator.truth_dir, f"{s.persons} persons ({s.guests} guest-only)"),
    )  # fmt: skip
    for name, where, what in rows:
        click.echo(f"  {name:<12} {what}  -> {where}")
