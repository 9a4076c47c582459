"""Sellers getMarketplaceParticipations: the marketplaces the simulated seller sells in.

It is the cheap call `spd check` makes per account; without it `spd check` against `spd sim`
failed on a 404. The answer has the shape of Amazon's model (sellers.json: a `payload` list of
MarketplaceParticipation, every required field set)."""

from __future__ import annotations

from typing import Any

from spd.sim.common import Call
from spd.sim.data import MARKETPLACES

GET_MARKETPLACE_PARTICIPATIONS = "sellers.getMarketplaceParticipations"
PATH = "/sellers/v1/marketplaceParticipations"
_LANGUAGES = {"US": "en_US", "CA": "en_CA", "MX": "es_MX", "GB": "en_GB", "DE": "de_DE", "JP": "ja_JP"}


async def get_marketplace_participations(call: Call) -> dict[str, Any]:
    """GET /sellers/v1/marketplaceParticipations: one participation per simulated marketplace."""
    return {"payload": [participation(m) for m in call.state.settings.marketplaces]}


def participation(marketplace_id: str) -> dict[str, Any]:
    """A marketplace the seller takes part in, described as Amazon describes it."""
    known = MARKETPLACES.get(marketplace_id, MARKETPLACES["ATVPDKIKX0DER"])
    channel = str(known["channel"])
    return {
        "marketplace": {"id": marketplace_id, "name": channel, "countryCode": known["country"],
                        "defaultCurrencyCode": known["currency"],
                        "defaultLanguageCode": _LANGUAGES.get(known["country"], "en_US"),
                        "domainName": "www." + channel.lower()},
        "participation": {"isParticipating": True, "hasSuspendedListings": False},
        "storeName": "spd simulated store",
    }
