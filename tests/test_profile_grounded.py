"""Grounded profiles (issue 22): per-user constrained decoding with outlines-core on the real
SmolLM2, the fields' schema, the free-text check, and the template plumbing."""

from __future__ import annotations

import json
import re

import pytest

from tests.test_profile_backends import POPULATION, make_events, requests_for
from uscope.profile.constrained import (
    byte_vocabulary,
    generate_constrained,
    regex_of_schema,
    token_bytes,
)
from uscope.profile.faithfulness import contradictions, split_sentences, vocabulary
from uscope.profile.grounded import (
    MIN_MAIN_SHARE,
    PERSONA_PREFIX,
    FieldSpec,
    GroundedStats,
    _parse,
    choice_schema,
    field_specs,
    fixed_facts,
    parse_fields,
    persona_of,
    profile_regex,
    profile_schema,
    render_fields,
    split_answer,
)
from uscope.profile.population import iter_features
from uscope.profile.prompting import load_template

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def events():
    return make_events(POPULATION)


@pytest.fixture(scope="module")
def features(events):
    return {f.user_id: f for f in iter_features(events, list(POPULATION))}


def test_token_bytes_reassemble_any_script(smollm2):
    _, tok = smollm2
    table = token_bytes(tok)
    for text in ("综合资讯 and 通讯聊天", "Café 12%", "Games"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert b"".join(table[i] for i in ids) == text.encode("utf-8")
    assert tok.eos_token_id not in table  # special tokens are left to the guide's EOS
    assert byte_vocabulary(tok) is byte_vocabulary(tok)  # built once per tokenizer


def test_specs_take_their_values_from_the_users_features(features):
    gamer = features["gamer"]
    specs = {s.key: s for s in field_specs(gamer)}
    assert specs["categories"].options == ("Games", "Social")
    assert specs["apps"].options == ("Arena", "Chat")
    assert specs["places"].options == ("Residence", "Campus")
    assert set(specs["active_time"].options) <= {"night", "morning", "afternoon", "evening"}
    assert specs["categories"].choices == ("Social",)  # the top one is fixed, not chosen
    schema = choice_schema(list(specs.values()))
    assert schema["properties"]["top_category"] == {"const": "Games"}
    assert schema["properties"]["categories"]["items"]["enum"] == ["Social"]
    assert schema["properties"]["categories"]["maxItems"] == 1  # no more items than choices
    assert schema["properties"]["top_place"] == {"const": "Residence"}  # f.main_place
    assert gamer.main_place == "Residence"
    assert schema["properties"]["active_time"]["minItems"] == 1  # no lead: choose one or more
    full = profile_schema(gamer)
    assert {"persona", "text"} <= set(full["properties"]) and set(full["required"]) == set(
        full["properties"])
    assert "days" not in fixed_facts(gamer)  # two active days: too few to say which days


def test_a_rare_app_is_not_a_main_one_and_a_lone_lead_is_not_decoded():
    rows = [(f"2024-01-{d:02d} 09:00", "Arena", "Games", "Residence") for d in range(1, 13)]
    rows.append(("2024-01-13 21:00", "Chat", "Social", "Residence"))  # 1 of 13 uses: under 10%
    (f,) = iter_features(make_events({"u": rows}), ["u"])
    specs = {s.key: s for s in field_specs(f)}
    assert specs["apps"].options == ("Arena",) and specs["apps"].choices == ()
    schema = choice_schema(list(specs.values()))
    assert schema["properties"]["top_app"] == {"const": "Arena"} and "apps" not in schema[
        "properties"]
    fields, whole = parse_fields(json.dumps({k: v.get("const", ["x"]) for k, v in
                                             schema["properties"].items()}), list(specs.values()))
    assert whole and fields["apps"] == ["Arena"] and fields["places"] == ["Residence"]
    one = FieldSpec("places", "Main places", ("a", "b"), max_items=1, lead_key="top_place")
    assert one.choices == () and "places" not in choice_schema([one])["properties"]


def test_location_only_users_lead_with_their_top_kind_of_place_and_venue():
    from uscope.data.datasets import load_dataset

    events = load_dataset("foursquare-nyc").events
    users = sorted(events["user_id"].unique())[:5]
    for f in iter_features(events, users):
        specs = {s.key: s for s in field_specs(f)}
        assert not f.uses_apps and "apps" not in specs
        assert specs["categories"].label == "Main kinds of place"
        assert specs["categories"].options[0] == f.top_place_categories[0][0]
        assert specs["places"].options[0] == f.main_place == f.top_venues[0][0]
        shares = {v: share for v, share, _ in f.top_venues}
        assert all(shares[v] >= MIN_MAIN_SHARE for v in specs["places"].choices)
        schema = choice_schema(list(specs.values()))
        assert schema["properties"]["top_place"] == {"const": f.main_place}


def test_days_are_stated_from_a_week_of_activity_on():
    workdays = [f"2024-01-{d:02d} 09:00" for d in (1, 2, 3, 4, 5, 8, 9)]  # Mon-Fri, Mon-Tue
    (worker,) = iter_features(make_events({"w": [(t, "Mail", "Office", "Work")
                                                 for t in workdays]}), ["w"])
    assert fixed_facts(worker)["days"] == "on weekdays"  # weekend share 0 < MIN_SHARE
    late = workdays + ["2024-01-13 09:00"] * 6 + ["2024-01-14 09:00"] * 6  # 12 of 19 at weekends
    (rester,) = iter_features(make_events({"r": [(t, "Mail", "Office", "Work")
                                                 for t in late]}), ["r"])
    assert fixed_facts(rester)["days"] == "mostly at weekends"


def test_parse_fields_keeps_allowed_values_and_falls_back(features):
    specs = field_specs(features["gamer"])
    fields, whole = parse_fields(
        '{"top_category":"Games","categories":["Social","Social"],"top_app":"Arena",'
        '"apps":[],"top_place":"Residence","places":["Campus"],"active_time":["afternoon"]}',
        specs)
    assert whole and fields["categories"] == ["Games", "Social"] and fields["apps"] == ["Arena"]
    assert fields["active_time"] == ["afternoon"]
    fields, whole = parse_fields('{"top_category":"Games","categories":["Soc', specs)  # cut
    assert not whole and fields["categories"] == ["Games"] and fields["apps"] == ["Arena"]
    fields, _ = parse_fields('{"categories":["Social","Arena"]}', specs)  # an app: kept out
    assert fields["categories"] == ["Games", "Social"]


def test_regex_holds_the_users_choices_only(features):
    specs = field_specs(features["gamer"])
    regex = profile_regex(regex_of_schema(choice_schema(specs)))
    good = ('{"top_category":"Games","categories":["Social"],"top_app":"Arena","apps":["Chat"],'
            '"top_place":"Residence","places":["Campus"],"active_time":["' + specs[-1].options[0]
            + '"]}\n' + PERSONA_PREFIX + " a gamer.")
    assert re.fullmatch(regex, good)
    assert not re.fullmatch(regex, good.replace('"Games"', '"News"'))  # another user's
    assert not re.fullmatch(regex, good.replace('"Games"', '"Social"'))  # not the top one
    assert not re.fullmatch(regex, good.replace('"apps":["Chat"]', '"apps":["Arena"]'))
    assert not re.fullmatch(regex, good.replace('"places":["Campus"]', '"places":[]'))
    assert not re.fullmatch(regex, good.replace(PERSONA_PREFIX, "They are"))


def test_hard_names_survive_schema_regex_and_parsing():
    names = ("Shop & Service", 'Joe\'s "Bar" (NYC)', "a\\b", "综合资讯", "x.y*")
    spec = [FieldSpec("categories", "Main kinds of place", names)]
    regex = profile_regex(regex_of_schema(choice_schema(spec)))
    for name in names:
        head = json.dumps({"categories": [name]}, ensure_ascii=False, separators=(",", ":"))
        answer = head + "\n" + PERSONA_PREFIX + " a visitor of JD.com shops. They shop."
        assert re.fullmatch(regex, answer), name
        assert parse_fields(split_answer(answer)[0], spec) == ({"categories": [name]}, True)
    assert not re.fullmatch(regex, '{"categories":["Shop"]}\n' + PERSONA_PREFIX + " a. b. c. d.")
    for name in names:  # a fixed lead is a JSON const: escaped the same way
        lead = [FieldSpec("places", "Main places", (name,), lead_key="top_place")]
        head = json.dumps({"top_place": name}, ensure_ascii=False,  # no other choice: no list
                          separators=(",", ":"))
        regex = profile_regex(regex_of_schema(choice_schema(lead)))
        assert re.fullmatch(regex, head + "\n" + PERSONA_PREFIX + " a visitor."), name
        assert parse_fields(head, lead) == ({"places": [name]}, True)


def test_parse_drops_contradicting_sentences_and_counts(events, features):
    (request,) = requests_for(events, ["gamer"])
    specs = field_specs(features["gamer"])
    names = vocabulary(features.values())
    stats = GroundedStats()
    answer = (json.dumps({"top_category": "Games", "categories": [], "top_app": "Arena",
                          "apps": [], "top_place": "Residence", "places": [],
                          "active_time": [specs[-1].options[0]]}, separators=(",", ":"))
              + f"\n{PERSONA_PREFIX} an evening gamer. They read News every morning. "
              "They like Arena. And then they")
    fields, fixed, facts, whole, kept, dropped = _parse(answer, request, specs, names, stats)
    assert whole
    assert kept == f"{PERSONA_PREFIX} an evening gamer. They like Arena."
    assert dropped == 1 and stats.counts["dropped_sentences"] == 1
    assert stats.counts["free_sentences"] == 3  # the trailing fragment is cut first
    assert persona_of(kept) == "an evening gamer"
    assert facts == render_fields(fields, specs, fixed)
    assert facts.startswith("Main app categories: Games. Main apps: Arena. Main places: "
                            "Residence. Most active in the ")
    assert split_answer(answer)[0].startswith('{"top_category"')


def test_constrained_rows_decode_under_their_own_regex(smollm2):
    lm, tok = smollm2
    from uscope.models import pad_left

    pad_left(tok)
    options = [["综合资讯", "通讯聊天"], ["Games", "Social", "News"]]
    schemas = [{"type": "object", "properties": {"category": {"enum": o}},
                "required": ["category"], "additionalProperties": False} for o in options]
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Pick one of {o} as JSON."}],
                                       tokenize=False, add_generation_prompt=True)
               for o in options]
    out = generate_constrained(lm, tok, prompts, [regex_of_schema(s) for s in schemas],
                               max_new_tokens=24)
    for row, allowed in zip(out, options):
        assert row.complete
        assert json.loads(row.text)["category"] in allowed
    cut = generate_constrained(lm, tok, prompts, [regex_of_schema(s) for s in schemas],
                               max_new_tokens=2)  # out of budget: a prefix, not complete
    assert [row.complete for row in cut] == [False, False]
    assert all(row.text.startswith('{"') for row in cut)
    sampled = generate_constrained(lm, tok, prompts, [regex_of_schema(s) for s in schemas],
                                   max_new_tokens=24, temperature=1.5, seed=3)
    assert all(json.loads(r.text)["category"] in o for r, o in zip(sampled, options))


@pytest.mark.slow
def test_grounded_profiles_of_real_smollm2_are_faithful(events, features, smollm2, minilm):
    from uscope.profile import ProfileConfig, ProfileEncoder, profile_users
    from uscope.profile.backends.hf import TransformersBackend

    template = load_template("grounded_v1")
    assert template.grounded and template.base.name == "profile_v2"
    assert template.version != load_template("profile_v2").version
    backend = TransformersBackend(loaded=smollm2)
    users = ["gamer", "reader", "slow-user", "nobody"]  # "nobody" has no events
    ps = profile_users(events, backend, encoder=ProfileEncoder(loaded=minilm), users=users,
                       config=ProfileConfig(template="grounded_v1", batch_size=4))
    assert ps.frame["status"].tolist() == ["ok"] * 4
    names = vocabulary(features.values())
    for user, text in zip(users[:3], ps.frame["profile"]):
        f = features[user]
        assert contradictions(text, f, names) == []
        assert text.startswith("Main app categories: ")
        named = text.split(".")[0].removeprefix("Main app categories: ").split(", ")
        assert set(named) <= {c for c, _ in f.top_categories}
        assert named[0] == f.top_categories[0][0]  # the fixed lead
        assert split_sentences(text)[-1].endswith(".")
    assert "cold start" in ps.frame["profile"].iloc[3]
    counts = backend.grounded_stats.counts
    assert counts["users"] == 3 and counts["dropped_sentences"] <= counts["free_sentences"]


def test_openai_backend_sends_each_users_regex_and_grounds_the_answer(events, features):
    from tests.test_profile_backends import ChatServer
    from uscope.profile.backends.openai_compat import OpenAIBackend, OpenAIConfig

    def answer(body):  # a server that honours the regex: the gamer's answer, or nothing valid
        regex = body["structured_outputs"]["regex"]
        text = ('{"top_category":"Games","categories":["Social"],"top_app":"Arena",'
                '"apps":["Chat"],"top_place":"Residence","places":["Campus"],'
                '"active_time":["evening"]}\n' + PERSONA_PREFIX + " an evening gamer. "
                "They read News.")
        return text if re.fullmatch(regex, text) else "{}"

    server = ChatServer(structured=answer)
    try:
        backend = OpenAIBackend(OpenAIConfig(base_url=server.url, model="m"))
        out = backend.generate(requests_for(events, ["gamer", "reader"],
                                            template=load_template("grounded_v1")))
    finally:
        server.close()
    regexes = {p["structured_outputs"]["regex"] for p in server.payloads}
    assert len(regexes) == 2  # one per user: their own allowed values
    gamer, reader = (g.text for g in out)
    assert gamer == ("Main app categories: Games, Social. Main apps: Arena, Chat. Main places: "
                     "Residence, Campus. "
                     "Most active in the evening, with a varied daily routine. "
                     + PERSONA_PREFIX
                     + " an evening gamer.")  # the News sentence is refuted and dropped
    assert reader.startswith("Main app categories: News.")  # broken answer: first options
    assert backend.grounded_stats.counts["fields_incomplete"] == 1
    assert backend.grounded_stats.counts["regenerated"] == 1  # reader had no free text
