"""The Tokens API's restricted data elements: what a Restricted Data Token may be asked for, and
the role Amazon grants each under. A table without I/O, so the config models can name the
elements without loading the token client (and asyncio with it)."""

from __future__ import annotations

from typing import Literal

from spd.core.errors import UsageError

DATA_ELEMENTS = ("buyerInfo", "shippingAddress", "buyerTaxInformation")
# the restricted role Amazon grants each data element under (Developer Central / Solution
# Provider Portal → app → Roles)
ROLES = {
    "buyerInfo": "Direct-to-Consumer Shipping (Restricted)",
    "shippingAddress": "Direct-to-Consumer Shipping (Restricted)",
    "buyerTaxInformation": "Tax Invoicing (Restricted) or Tax Remittance (Restricted)",
}
RestrictedElement = Literal[DATA_ELEMENTS]  # type: ignore[valid-type]  # a config's `restricted:` entries


def check_elements(op_label: str, restricted: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The data elements as a sorted tuple; UsageError naming the allowed ones otherwise."""
    unknown = [e for e in restricted if e not in DATA_ELEMENTS]
    if unknown:
        raise UsageError(f"{op_label}: unknown restricted data element {', '.join(unknown)}; "
                         f"allowed: {', '.join(DATA_ELEMENTS)}")
    return tuple(sorted(set(restricted)))
