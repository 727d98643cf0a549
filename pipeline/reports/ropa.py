"""The GDPR Art. 30 record of processing activities, generated from the policy."""

from __future__ import annotations

from typing import Any

from pipeline.core.fields import FIELDS, Owner
from pipeline.core.linkage import SHARED_HEADERS, linkability
from pipeline.core.party import PARTY_DESCRIPTIONS
from pipeline.core.policy import LEGAL_BASES, OnObjection, Policy, Route, RouteKind


def erasure(route: Route) -> str:
    """What erasure (Art. 17) means for a route's topic, a log that cannot delete one record."""
    kept = f"each output is deleted by the topic's retention, {route.retention_days} days"
    if route.kind is RouteKind.LAWFUL_INTERCEPT:
        return f"{kept}; not erasable on request while the warrant's legal obligation holds"
    if route.kind is RouteKind.BILLING:
        return (
            f"{kept} (until a bill can no longer be challenged); `cdrveil subject access` "
            "finds the subject's outputs by MSISDN or IMSI"
        )
    after = (
        "a consent withdrawal stops the outputs of everything processed after it"
        if route.requires_consent
        else objection(route)
    )
    return (
        f"{kept}; `cdrveil subject pseudonyms` gives the holders of copies the pseudonyms to "
        "delete; shredding a key epoch makes all its pseudonyms unlinkable for good; " + after
    )


def objection(route: Route) -> str:
    """What an objection (Art. 21) does on a route, as the policy says."""
    if route.on_objection is OnObjection.EXCLUDE:
        return (
            "an objection (Art. 21) stops the outputs of the objector's records processed "
            "after it, and drops the objector's number from other subscribers' records"
        )
    if route.on_objection is OnObjection.OVERRIDE:
        return (
            "an objection (Art. 21) is overridden on a compelling legitimate ground: "
            f"{route.override_ground}"
        )
    return "no objection applies (the route does not rest on legitimate interest)"


def ropa_document(policy: Policy) -> dict[str, Any]:
    """The record of processing as plain data (for ``--json``)."""
    activities = []
    for route in policy.routes.values():
        personal = (
            sorted(name for name in route.fields if FIELDS[name][1] is not Owner.NONE)
            if route.fields
            else ["every field of the record (complete copy)"]
        )
        activities.append(
            {
                "route": route.name,
                "purpose": route.purpose,
                "purposeDescription": policy.purposes[route.purpose].description
                if route.purpose in policy.purposes
                else route.legal_reference,
                "legalBasis": route.legal_basis,
                "legalBasisArticle": LEGAL_BASES[route.legal_basis],
                "legalReference": route.legal_reference,
                "requiresConsent": route.requires_consent,
                "onObjection": None if route.on_objection is None else str(route.on_objection),
                "overrideGround": route.override_ground or None,
                "dataCategories": route.categories,
                "personalDataFields": personal,
                "recipients": route.recipients,
                "topic": route.topic,
                "retentionDays": route.retention_days,
                "erasure": erasure(route),
            }
        )
    activities.append(
        {
            "route": "dead_letter",
            "purpose": "operations",
            "purposeDescription": "Keep rejected input for inspection, fixing and replay",
            "legalBasis": "legitimate_interest",
            "legalBasisArticle": LEGAL_BASES["legitimate_interest"],
            "legalReference": "Operating the pipeline without losing records",
            "requiresConsent": False,
            "onObjection": None,
            "overrideGround": None,
            "dataCategories": "As sensitive as the input: the original bytes, untouched",
            "personalDataFields": ["every field of the rejected input"],
            "recipients": policy.dead_letter_recipients,
            "topic": policy.dead_letter_topic,
            "retentionDays": policy.dead_letter_retention_days,
            "erasure": "each dead letter is deleted by the topic's retention, "
            f"{policy.dead_letter_retention_days} days",
        }
    )
    return {
        "controller": policy.controller,
        "dpoContact": policy.dpo_contact,
        "dataSubjects": policy.data_subjects,
        "policy": {"name": policy.name, "version": policy.version, "source": policy.source},
        "purposes": [
            {
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "legalBasis": p.legal_basis,
            }
            for p in policy.purposes.values()
        ],
        "processingActivities": activities,
        "linkability": {
            "recordIds": "keyed per purpose on analytics routes (HMAC under the purpose's "
            "key); billing and lawful intercept carry the source record id",
            "sharedFields": [
                {
                    "field": f.field,
                    "form": f.form,
                    "entropy": f.entropy,
                    "routes": list(f.routes),
                    "consentedOnly": f.consented_only,
                }
                for f in linkability(policy)
            ],
            "sharedHeaders": [{"header": h, "why": why} for h, why in SHARED_HEADERS],
        },
        # What every route with a rule for a party-number field does with a value that is no
        # subscriber's MSISDN (nobody's consent): the [party_numbers] table.
        "partyNumbers": [
            {"class": party.value, "meaning": PARTY_DESCRIPTIONS[party], "action": action.value}
            for party, action in policy.party_numbers.items()
        ],
        "securityMeasures": list(policy.security_measures),
    }


def _linkability_lines(linkage: dict[str, Any]) -> list[str]:
    """What still joins two analytics purposes' outputs of one record (Art. 5(1)(b))."""
    lines = [
        "",
        "## Linkability between purposes",
        "",
        f"Record ids are {linkage['recordIds']}; pseudonyms and output keys are keyed per "
        "purpose too. What the policy keeps in the same form on two or more analytics routes "
        "joins their outputs of one record:",
        "",
    ]
    shared = linkage["sharedFields"]
    lines += [
        f"- {f['field']} ({f['form']}, {f['entropy']} entropy): {', '.join(f['routes'])}"
        + (" (only for who consented to the purposes)" if f["consentedOnly"] else "")
        for f in shared
    ] or ["- no field"]
    lines += ["", "Headers and metadata the same on every route's output of one record:", ""]
    lines += [f"- {h['header']}: {h['why']}" for h in linkage["sharedHeaders"]]
    return lines


def ropa_markdown(policy: Policy) -> str:
    """The record of processing as Markdown a DPO can file."""
    doc = ropa_document(policy)
    lines = [
        "# Record of processing activities (GDPR Art. 30)",
        "",
        f"- Controller: {doc['controller']}",
        f"- Data protection officer: {doc['dpoContact']}",
        f"- Data subjects: {doc['dataSubjects']}",
        f"- Policy: {policy.name}, version {policy.version}, from {policy.source}",
        "",
        "## Purposes",
        "",
        "| purpose | title | legal basis | description |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {p['name']} | {p['title']} | {p['legalBasis']} ({LEGAL_BASES[p['legalBasis']]}) "
        f"| {p['description']} |"
        for p in doc["purposes"]
    ]
    lines += [
        "",
        "## Processing activities (one per output route)",
        "",
        "| route | purpose | legal basis | consent needed | data categories | recipients "
        "| topic | retention |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {a['route']} | {a['purpose']} | {a['legalReference']} "
        f"| {'yes' if a['requiresConsent'] else 'no'} | {a['dataCategories']} "
        f"| {a['recipients']} | `{a['topic']}` | {a['retentionDays']} days |"
        for a in doc["processingActivities"]
    ]
    lines += [
        "",
        "## Access and erasure (Art. 15, 17)",
        "",
        "Topics are logs: one record cannot be deleted from them. Per route:",
        "",
    ]
    lines += [f"- {a['route']}: {a['erasure']}" for a in doc["processingActivities"]]
    lines += ["", "## Objections (Art. 21)", ""]
    lines += [
        f"- {a['route']}: {objection(policy.routes[a['route']])}"
        for a in doc["processingActivities"]
        if a["onObjection"] is not None
    ]
    lines += _linkability_lines(doc["linkability"])
    lines += [
        "",
        "## Other parties' numbers that are no subscriber's MSISDN",
        "",
        "They identify no subscriber, so no consent applies; the record is processed. A route "
        "that drops such a field without consent drops it; every other route that lists it "
        "applies the action of its class (keep: as received; pseudonymize: in a key domain of "
        "its own). Lawful intercept receives every matching record complete; warrants match "
        "MSISDNs only.",
        "",
        "| class | what it is | action |",
        "|---|---|---|",
    ]
    lines += [f"| {p['class']} | {p['meaning']} | {p['action']} |" for p in doc["partyNumbers"]]
    lines += ["", "## Security measures (Art. 32)", ""]
    lines += [f"- {measure}" for measure in doc["securityMeasures"]]
    lines += [
        "",
        "Personal data fields per route (what each route may carry, clear or transformed):",
        "",
    ]
    lines += [
        f"- {a['route']}: {', '.join(a['personalDataFields'])}" for a in doc["processingActivities"]
    ]
    return "\n".join(lines) + "\n"
