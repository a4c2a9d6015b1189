// The control protocol without a daemon: request parsing, every error code,
// the 1 MiB line limit, ids echoed, framing, and op argument validation.
#include <gtest/gtest.h>

#include "ops.hpp"
#include "protocol.hpp"

namespace sluice::protocol {
namespace {

namespace json = boost::json;

RejectedRequest rejected(const ParsedRequest& parsed) {
  const auto* r = std::get_if<RejectedRequest>(&parsed);
  EXPECT_NE(r, nullptr);
  return r ? *r : RejectedRequest{nullptr, {ErrorCode::Failed, "request was accepted"}};
}

json::value parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  return json::parse(line);
}

TEST(ProtocolRequest, ParsesIdOpAndArgs) {
  auto parsed = parse_request(R"({"id":7,"op":"attach","args":{"iface":"eth0"}})");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  const auto& request = std::get<Request>(parsed);
  EXPECT_EQ(request.id, json::value(7));
  EXPECT_EQ(request.op, "attach");
  EXPECT_EQ(request.args.at("iface"), json::value("eth0"));
}

TEST(ProtocolRequest, ArgsAreOptional) {
  auto parsed = parse_request(R"({"id":9,"op":"status"})");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  EXPECT_EQ(std::get<Request>(parsed).id, json::value(9));
  EXPECT_TRUE(std::get<Request>(parsed).args.empty());
}

TEST(ProtocolRequest, IdsAreIntegersAndAnythingElseIsRefusedWithANullId) {
  // Before: 1e400 was accepted and echoed as a double (an infinity), 1.5 and "a" as sent.
  for (const char* id : {"1.5", R"("a")", "1e400", "1e3", "1.0", "true", "null", "{}"}) {
    const auto r = rejected(parse_request(std::string(R"({"id":)") + id + R"(,"op":"status"})"));
    EXPECT_EQ(r.error.code, ErrorCode::BadJson) << id;
    EXPECT_TRUE(r.id.is_null()) << id << ": " << json::serialize(r.id);
    EXPECT_NE(r.error.message.find("id must be an integer"), std::string::npos) << r.error.message;
    const auto line = parse_line(error_reply(r.id, r.error));
    EXPECT_TRUE(line.at("id").is_null()) << id;
  }
  for (const char* id : {"0", "-5", "9223372036854775807", "18446744073709551615"}) {
    auto parsed = parse_request(std::string(R"({"id":)") + id + R"(,"op":"status"})");
    ASSERT_TRUE(std::holds_alternative<Request>(parsed)) << id;
    EXPECT_EQ(json::serialize(std::get<Request>(parsed).id), id);
  }
}

TEST(ProtocolRequest, DuplicateKeysAreRefusedAtAnyDepth) {
  // Before: the last duplicate won, and this line shut the daemon down.
  const auto op = rejected(parse_request(R"({"id":1,"op":"status","op":"shutdown"})"));
  EXPECT_EQ(op.error.code, ErrorCode::BadJson);
  EXPECT_TRUE(op.id.is_null());
  EXPECT_NE(op.error.message.find(R"("op" is given twice)"), std::string::npos) << op.error.message;
  const auto id = rejected(parse_request(R"({"id":1,"id":2,"op":"status"})"));
  EXPECT_NE(id.error.message.find(R"("id" is given twice)"), std::string::npos) << id.error.message;
  const auto in_args =
      rejected(parse_request(R"({"id":1,"op":"shutdown","args":{"detach":false,"detach":true}})"));
  EXPECT_NE(in_args.error.message.find(R"("args.detach")"), std::string::npos) << in_args.error.message;
  const auto deeper = rejected(
      parse_request(R"({"id":1,"op":"config.set","args":{"stages":{"lb":true,"filter":false,"lb":false}}})"));
  EXPECT_NE(deeper.error.message.find(R"("args.stages.lb")"), std::string::npos) << deeper.error.message;
  const auto in_array =
      rejected(parse_request(R"({"id":1,"op":"block.add","args":{"prefixes":[{"a":1},{"b":1,"b":2}]}})"));
  EXPECT_NE(in_array.error.message.find(R"("args.prefixes[1].b")"), std::string::npos) << in_array.error.message;
  // Escapes and split keys are compared by their value: "o\u0070" is "op".
  const auto escaped = rejected(parse_request(R"({"id":1,"op":"status","o\u0070":"shutdown"})"));
  EXPECT_NE(escaped.error.message.find("given twice"), std::string::npos) << escaped.error.message;
  // The same key in sibling objects, or in an object and its parent, is no duplicate.
  auto fine = parse_request(R"({"id":1,"op":"block.add","args":{"prefixes":[{"a":1},{"a":2}],"op":{"op":1}}})");
  EXPECT_TRUE(std::holds_alternative<Request>(fine));
}

TEST(ProtocolRequest, MalformedJsonIsBadJsonWithNullId) {
  const auto r = rejected(parse_request(R"({"id":1,"op":)"));
  EXPECT_EQ(r.error.code, ErrorCode::BadJson);
  EXPECT_TRUE(r.id.is_null());
  EXPECT_NE(r.error.message.find("not valid JSON"), std::string::npos) << r.error.message;
}

TEST(ProtocolRequest, EnvelopeErrorsNameTheFieldAndEchoTheId) {
  EXPECT_EQ(rejected(parse_request("[1,2]")).error.code, ErrorCode::BadJson);
  EXPECT_NE(rejected(parse_request(R"({"op":"status"})")).error.message.find("id is missing"), std::string::npos);
  const auto bad_id = rejected(parse_request(R"({"id":[1],"op":"status"})"));
  EXPECT_NE(bad_id.error.message.find("[1]"), std::string::npos) << bad_id.error.message;
  const auto no_op = rejected(parse_request(R"({"id":3})"));
  EXPECT_EQ(no_op.id, json::value(3));
  EXPECT_NE(no_op.error.message.find("op is missing"), std::string::npos);
  const auto op_number = rejected(parse_request(R"({"id":8,"op":5})"));
  EXPECT_EQ(op_number.id, json::value(8));
  EXPECT_NE(op_number.error.message.find("op must be a string"), std::string::npos);
  const auto args_array = rejected(parse_request(R"({"id":4,"op":"status","args":[]})"));
  EXPECT_NE(args_array.error.message.find("args must be an object"), std::string::npos);
  const auto extra = rejected(parse_request(R"({"id":4,"op":"status","arg":{}})"));
  EXPECT_NE(extra.error.message.find("\"arg\""), std::string::npos) << extra.error.message;
}

TEST(ProtocolRequest, DeepNestingIsRefusedNotRecursedInto) {
  std::string deep = R"({"id":1,"op":"status","args":{"x":)";
  for (int i = 0; i < 10000; ++i) deep += "[";
  const auto r = rejected(parse_request(deep));
  EXPECT_EQ(r.error.code, ErrorCode::BadJson);
}

TEST(ProtocolRequest, LineOverOneMebibyteIsTooLarge) {
  const std::string big = R"({"id":1,"op":"status","args":{"x":")" + std::string(max_request_bytes, 'a') + "\"}}";
  EXPECT_EQ(rejected(parse_request(big)).error.code, ErrorCode::TooLarge);
}

TEST(ProtocolRequest, HostileValuesAreCutInErrorMessages) {
  const std::string huge_id(100'000, '7');
  const auto r = rejected(parse_request(R"({"id":{"a":")" + huge_id + R"("},"op":"status"})"));
  EXPECT_LT(r.error.message.size(), 200u);
}

TEST(ProtocolReply, EveryErrorCodeRoundTrips) {
  for (auto code : {ErrorCode::BadJson, ErrorCode::TooLarge, ErrorCode::UnknownOp, ErrorCode::BadArgs,
                    ErrorCode::Forbidden, ErrorCode::Failed}) {
    const std::string line = error_reply(json::value("id-1"), {code, "because"});
    const auto reply = parse_line(line);
    EXPECT_EQ(reply.at("id"), json::value("id-1"));
    EXPECT_EQ(reply.at("ok"), json::value(false));
    EXPECT_EQ(reply.at("error").at("code"), json::value(to_string(code)));
    EXPECT_EQ(reply.at("error").at("message"), json::value("because"));
    auto parsed = parse_reply(line.substr(0, line.size() - 1));
    ASSERT_TRUE(std::holds_alternative<Reply>(parsed));
    EXPECT_EQ(std::get<Reply>(parsed).error->code, code);
    EXPECT_EQ(parse_error_code(to_string(code)), code);
  }
  EXPECT_EQ(to_string(ErrorCode::BadJson), "bad_json");
  EXPECT_EQ(to_string(ErrorCode::TooLarge), "too_large");
  EXPECT_EQ(to_string(ErrorCode::UnknownOp), "unknown_op");
  EXPECT_EQ(to_string(ErrorCode::BadArgs), "bad_args");
  EXPECT_EQ(to_string(ErrorCode::Forbidden), "forbidden");
  EXPECT_EQ(to_string(ErrorCode::Failed), "failed");
}

TEST(ProtocolReply, OkAndEventRepliesEchoTheIdVerbatim) {
  for (const json::value& id : {json::value(1), json::value(-5), json::value(1.5), json::value("s"),
                                json::value(std::uint64_t{18446744073709551615u})}) {
    EXPECT_EQ(parse_line(ok_reply(id, json::object{{"x", 1}})).at("id"), id);
    EXPECT_EQ(parse_line(event_reply(id, json::object{{"y", 2}})).at("id"), id);
  }
  const auto ok = parse_line(ok_reply(1, json::object{{"x", 1}}));
  EXPECT_EQ(ok.at("ok"), json::value(true));
  EXPECT_EQ(ok.at("result").at("x"), json::value(1));
  EXPECT_EQ(parse_line(event_reply(1, json::object{})).as_object().count("event"), 1u);
}

TEST(ProtocolFramer, SplitsLinesAcrossReadsAndSkipsEmptyOnes) {
  LineFramer framer;
  framer.feed("{\"a\":1}\n\n{\"b\"");
  auto first = framer.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(std::get<std::string>(*first), "{\"a\":1}");
  EXPECT_FALSE(framer.next());
  framer.feed(":2}\r\n");
  auto second = framer.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(std::get<std::string>(*second), "{\"b\":2}");
  EXPECT_FALSE(framer.next());
}

TEST(ProtocolFramer, OverLongLineIsReportedOnceDiscardedAndTheStreamGoesOn) {
  constexpr std::size_t limit = 16;
  LineFramer framer(limit);
  framer.feed(std::string(limit, 'x'));
  EXPECT_FALSE(framer.next()) << "exactly the limit is still allowed";
  framer.feed("yy");
  auto too_large = framer.next();
  ASSERT_TRUE(too_large);
  EXPECT_TRUE(std::holds_alternative<LineFramer::TooLarge>(*too_large));
  EXPECT_LE(framer.buffered(), limit) << "an over-long line is not kept";
  framer.feed(std::string(1000, 'z'));  // still the same line: dropped silently
  EXPECT_FALSE(framer.next());
  EXPECT_EQ(framer.buffered(), 0u);
  framer.feed("tail\nnext\n");
  auto next = framer.next();
  ASSERT_TRUE(next);
  EXPECT_EQ(std::get<std::string>(*next), "next");
}

TEST(ProtocolFramer, WholeOverLongLineInOneReadIsTooLarge) {
  LineFramer framer(4);
  framer.feed("12345\nok\n");
  auto first = framer.next();
  ASSERT_TRUE(first);
  EXPECT_TRUE(std::holds_alternative<LineFramer::TooLarge>(*first));
  auto second = framer.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(std::get<std::string>(*second), "ok");
}

TEST(ProtocolFramer, DefaultLimitIsOneMebibyte) {
  LineFramer framer;
  framer.feed(std::string(max_request_bytes, 'a') + "\n");
  auto line = framer.next();
  ASSERT_TRUE(line);
  EXPECT_TRUE(std::holds_alternative<std::string>(*line));
  framer.feed(std::string(max_request_bytes + 1, 'a') + "\n");
  line = framer.next();
  ASSERT_TRUE(line);
  EXPECT_TRUE(std::holds_alternative<LineFramer::TooLarge>(*line));
}

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

void expect_bad(const ArgsResult<void>& result, std::string_view needle) {
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::BadArgs);
  EXPECT_NE(result.error().message.find(needle), std::string::npos) << result.error().message;
}
template <class T>
void expect_bad(const ArgsResult<T>& result, std::string_view needle) {
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::BadArgs);
  EXPECT_NE(result.error().message.find(needle), std::string::npos) << result.error().message;
}

TEST(ProtocolOps, AccessOfEveryOpIsDeclared) {
  for (const auto& op : all_ops()) EXPECT_EQ(find_op(op.name), &op);
  EXPECT_EQ(find_op("status")->access, Access::ReadOnly);
  // Packet heads are for root and the admin group, not every socket-group member.
  EXPECT_EQ(find_op("events")->access, Access::ReadsPackets);
  EXPECT_TRUE(find_op("events")->streaming);
  EXPECT_EQ(find_op("rule.list")->access, Access::ReadOnly);
  for (auto name : {"attach", "detach", "config.set", "shutdown", "block.add", "rule.add", "rule.del", "limit.set",
                    "limit.del", "apply", "filter.policy"})
    EXPECT_EQ(find_op(name)->access, Access::ChangesState) << name;
  EXPECT_EQ(find_op("nope"), nullptr);
}

TEST(ProtocolOps, AttachArgs) {
  auto parsed = parse_attach_args(obj(R"({"iface":"eth0"})"));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->iface, "eth0");
  EXPECT_EQ(parsed->mode, AttachMode::Native);
  EXPECT_EQ(parse_attach_args(obj(R"({"iface":"vb1","mode":"skb"})"))->mode, AttachMode::Skb);
  expect_bad(parse_attach_args(obj(R"({})")), "iface: is required");
  expect_bad(parse_attach_args(obj(R"({"iface":7})")), "iface: must be a string, got 7");
  expect_bad(parse_attach_args(obj(R"({"iface":"a/b"})")), "\"a/b\"");
  expect_bad(parse_attach_args(obj(R"({"iface":"sixteen-chars-xx"})")), "not an interface name");
  expect_bad(parse_attach_args(obj(R"({"iface":""})")), "not an interface name");
  // The kernel's rule, shared with the YAML (control/config): an alias-style name is no interface.
  expect_bad(parse_attach_args(obj(R"({"iface":"eth0:1"})")), "not an interface name: contains '/', ':'");
  expect_bad(parse_attach_args(obj(R"({"iface":"eth0","mode":"hw"})")), "mode: must be \"native\" or \"skb\", got \"hw\"");
  expect_bad(parse_attach_args(obj(R"({"iface":"eth0","force":true})")), "\"force\"");
}

TEST(ProtocolOps, ConfigPatchIsAllOrNothingAndNamesTheField) {
  auto patch = parse_config_patch(obj(R"({"end_verdict":"drop","stages":{"lb":false},"drop_fragments":true})"));
  ASSERT_TRUE(patch);
  EXPECT_EQ(patch->end_verdict, Verdict::Drop);
  EXPECT_EQ(patch->stages.lb, false);
  EXPECT_FALSE(patch->stages.filter);
  EXPECT_EQ(patch->drop_fragments, true);
  EXPECT_FALSE(patch->malformed_verdict);
  expect_bad(parse_config_patch(obj(R"({"end_verdict":"DROP"})")), "end_verdict: must be \"pass\" or \"drop\", got \"DROP\"");
  expect_bad(parse_config_patch(obj(R"({"drop_fragments":1})")), "drop_fragments: must be true or false, got 1");
  expect_bad(parse_config_patch(obj(R"({"stages":{"nat":true}})")), "\"nat\"");
  expect_bad(parse_config_patch(obj(R"({"stages":"all"})")), "stages: must be an object");
  expect_bad(parse_config_patch(obj(R"({"end_verdict":"pass","colour":"blue"})")), "\"colour\"");
  expect_bad(parse_config_patch(obj(R"({})")), "at least one");
  // The single knob of before the split is refused by name, pointing at its two successors.
  expect_bad(parse_config_patch(obj(R"({"default_verdict":"drop"})")), "default_verdict: is now two settings");
  expect_bad(parse_config_patch(obj(R"({"default_verdict":"drop"})")), "filter.policy");
  EXPECT_EQ(parse_config_patch(obj(R"({"drop_sample_every":1})"))->drop_sample_every, 1u);
  EXPECT_EQ(parse_config_patch(obj(R"({"drop_sample_every":0})"))->drop_sample_every, 0u);
  EXPECT_FALSE(parse_config_patch(obj(R"({"drop_fragments":true})"))->drop_sample_every);
  expect_bad(parse_config_patch(obj(R"({"drop_sample_every":-1})")), "drop_sample_every: -1 is out of range");
  expect_bad(parse_config_patch(obj(R"({"drop_sample_every":1000000001})")), "out of range");
  expect_bad(parse_config_patch(obj(R"({"drop_sample_every":"1"})")), "drop_sample_every: must be an integer");
  for (auto name : {"config.show", "limit.list", "conn.list"}) EXPECT_EQ(find_op(name)->access, Access::ReadOnly) << name;
}

TEST(ProtocolOps, EventsAndShutdownArgs) {
  auto events = parse_events_args(obj(R"({"follow":true,"max":10})"));
  ASSERT_TRUE(events);
  EXPECT_TRUE(events->follow);
  EXPECT_EQ(events->max, 10u);
  EXPECT_FALSE(parse_events_args(obj("{}"))->max);
  expect_bad(parse_events_args(obj(R"({"max":0})")), "max: 0 is out of range");
  expect_bad(parse_events_args(obj(R"({"max":-1})")), "out of range");
  expect_bad(parse_events_args(obj(R"({"max":2.5})")), "must be an integer, got 2.5");
  expect_bad(parse_events_args(obj(R"({"max":"5"})")), "must be an integer");
  expect_bad(parse_events_args(obj(R"({"max":100000000000})")), "out of range");
  EXPECT_TRUE(parse_shutdown_args(obj(R"({"detach":true})"))->detach);
  EXPECT_FALSE(parse_shutdown_args(obj("{}"))->detach);
  expect_bad(parse_shutdown_args(obj(R"({"detach":"yes"})")), "detach: must be true or false");
  expect_bad(parse_no_args("status", obj(R"({"verbose":true})")), "this op takes none");
}

}  // namespace
}  // namespace sluice::protocol
