"""The interaction driver: autocomplete of subcommands in groups, read off the bot's answer."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

shop = app_commands.Group(name="shop", description="the shop")
admin = app_commands.Group(name="admin", description="staff only", parent=shop)

FRUIT = ["apple", "apricot", "banana"]


async def _fruit(interaction: discord.Interaction[Any], current: str) -> list[Any]:
    return [app_commands.Choice(name=f, value=f) for f in FRUIT if f.startswith(current)]


@shop.command(name="buy", description="buy a fruit")
@app_commands.autocomplete(item=_fruit)
async def buy(interaction: discord.Interaction[Any], item: str) -> None:
    await interaction.response.send_message(f"bought {item}")


@admin.command(name="restock", description="restock a fruit")
@app_commands.autocomplete(item=_fruit)
async def restock(interaction: discord.Interaction[Any], item: str, count: int = 1) -> None:
    await interaction.response.send_message(f"restocked {count} {item}")


async def test_autocomplete_of_a_subcommand(make_bot):
    harness = await make_bot()
    harness.bot.tree.add_command(shop)
    result = await harness.interactions.autocomplete(
        "shop buy", {"item": "ap"}, "item", member=harness.member
    )
    assert result.choices == [
        {"name": "apple", "value": "apple"},
        {"name": "apricot", "value": "apricot"},
    ]


async def test_autocomplete_of_a_subcommand_in_a_nested_group(make_bot):
    harness = await make_bot()
    harness.bot.tree.add_command(shop)
    result = await harness.interactions.autocomplete(
        "shop admin restock", {"item": "ba", "count": 3}, "item", member=harness.member
    )
    assert result.choices == [{"name": "banana", "value": "banana"}]
    # And the same path runs the command itself.
    ran = await harness.interactions.slash(
        "shop admin restock", {"item": "banana", "count": 3}, member=harness.member
    )
    assert ran.first_response["content"] == "restocked 3 banana"
