"""The discord adapter: discord.py objects in, the core's plain values out.

It also hooks the bot's entry points. Only the adapter and the cog import discord.
"""
