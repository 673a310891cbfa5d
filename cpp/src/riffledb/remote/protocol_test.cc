#include "riffledb/remote/protocol.h"

#include <arrow/api.h>
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "riffledb/testing/testing.h"

namespace riffledb::remote {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(RemoteRoute, TableRoutesWithAndWithoutTrailingSlash) {
  ASSERT_OK_AND_ASSIGN(auto route, ParseRoute("/v1/table/events/describe/"));
  EXPECT_EQ(route.kind, Route::Kind::kTable);
  EXPECT_EQ(route.table, "events");
  EXPECT_EQ(route.action, "describe");
  ASSERT_OK_AND_ASSIGN(route, ParseRoute("/v1/table/events/count_rows"));
  EXPECT_EQ(route.action, "count_rows");
  ASSERT_OK_AND_ASSIGN(route, ParseRoute("/v1/table/t.1-x_y/version/list/"));
  EXPECT_EQ(route.table, "t.1-x_y");
  EXPECT_EQ(route.action, "version/list");
}

TEST(RemoteRoute, ListTablesAndQueryParameters) {
  ASSERT_OK_AND_ASSIGN(auto route, ParseRoute("/v1/table/?limit=10&page_token=a%20b"));
  EXPECT_EQ(route.kind, Route::Kind::kListTables);
  EXPECT_THAT(route.params, ElementsAre(Pair("limit", "10"), Pair("page_token", "a b")));
  ASSERT_OK_AND_ASSIGN(route, ParseRoute("/v1/table"));
  EXPECT_EQ(route.kind, Route::Kind::kListTables);
  ASSERT_OK_AND_ASSIGN(route, ParseRoute("/v1/namespace/$/table/list?limit=2"));
  EXPECT_EQ(route.kind, Route::Kind::kListTables);
  ASSERT_OK_AND_ASSIGN(route, ParseRoute("/v1/namespace/%24/table/list/"));
  EXPECT_EQ(route.kind, Route::Kind::kListTables);
  ASSERT_OK_AND_ASSIGN(route, ParseRoute("/v1/table/t/create/?mode=exist_ok&delimiter"));
  EXPECT_EQ(FindParam(route.params, "mode"), "exist_ok");
  EXPECT_EQ(FindParam(route.params, "delimiter"), "");
  EXPECT_EQ(FindParam(route.params, "branch"), std::nullopt);
}

TEST(RemoteRoute, UnknownRoutesAreKeyErrors) {
  ASSERT_RAISES(KeyError, ParseRoute("/"));
  ASSERT_RAISES(KeyError, ParseRoute("/v2/table/t/describe/"));
  ASSERT_RAISES(KeyError, ParseRoute("/v1/tables/"));
  ASSERT_RAISES(KeyError, ParseRoute("/v1/table/t"));
  ASSERT_RAISES(KeyError, ParseRoute("/v1/table/t/"));
  ASSERT_RAISES_WITH_MESSAGE(KeyError, "No such namespace: 'ns'",
                             ParseRoute("/v1/namespace/ns/table/list"));
  // One spelling per route (a proxy's path rules match that one): no empty segment, no
  // fragment. `/v1/table//t/drop/` dropped t.
  for (const char* target :
       {"/v1/table//t/drop/", "/v1/table/t/drop//", "//v1/table/t/drop/",
        "/v1/table/t/drop/#x", "/v1/table/t#/drop/"}) {
    EXPECT_TRUE(ParseRoute(target).status().IsKeyError()) << target;
  }
  ASSERT_OK(ParseRoute("/v1/table/t/drop/?a=b//c").status());  // a query may have them
}

TEST(RemoteRoute, PathTraversalNamesAreRefused) {
  for (const char* target :
       {"/v1/table/../describe/", "/v1/table/..%2F..%2Fetc/describe/",
        "/v1/table/%2Fetc%2Fpasswd/describe/", "/v1/table/.hidden/describe/",
        "/v1/table/a%5Cb/describe/", "/v1/table/ns$t/describe/",
        "/v1/table/a%00b/describe/", "/v1/table/a%2/describe/"}) {
    auto route = ParseRoute(target);
    ASSERT_FALSE(route.ok()) << target;
    EXPECT_TRUE(route.status().IsInvalid()) << target << ": " << route.status();
  }
  const std::string long_name(300, 'a');
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "aaaa",
                             ParseRoute("/v1/table/" + long_name + "/describe/"));
}

TEST(RemoteRoute, MalformedQueryStringsNameTheParameter) {
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "parameter 'mode'",
                             ParseRoute("/v1/table/t/create/?mode=%zz"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "parameter 'limit'", ParseQueryString("limit=%4"));
  ASSERT_OK_AND_ASSIGN(auto params, ParseQueryString("&&a=1&b&=c&"));
  EXPECT_THAT(params, ElementsAre(Pair("a", "1"), Pair("b", ""), Pair("", "c")));
  // Given twice, as the same name however encoded: which one counts is ambiguous.
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "parameter 'mode' is given more than once",
      ParseRoute("/v1/table/t/create/?mode=create&mode=overwrite"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "parameter 'mode' is given more than once",
                             ParseQueryString("mode=a&%6Dode=b"));
}

TEST(RemoteAuth, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(RemoteRequest, ReadRequests) {
  ASSERT_OK_AND_ASSIGN(auto request, ParseReadRequest(""));
  EXPECT_EQ(request.version, std::nullopt);
  ASSERT_OK_AND_ASSIGN(request, ParseReadRequest(R"({"version": null})"));
  EXPECT_EQ(request.version, std::nullopt);
  ASSERT_OK_AND_ASSIGN(
      request, ParseReadRequest(R"({"version": 7, "predicate": "a > 1", "x": 1})"));
  EXPECT_EQ(request.version, 7u);
  EXPECT_EQ(request.predicate, "a > 1");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "not valid JSON", ParseReadRequest("{"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "expected a JSON object", ParseReadRequest("[1]"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'version'",
                             ParseReadRequest(R"({"version": -1})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'version'",
                             ParseReadRequest(R"({"version": "7"})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'predicate'",
                             ParseReadRequest(R"({"predicate": 3})"));
  // riffledb's client sends the table id a describe of the version gave.
  ASSERT_OK_AND_ASSIGN(request, ParseReadRequest(R"({"version": 2, "table_id": "ab"})"));
  EXPECT_EQ(request.table_id, "ab");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'table_id'",
                             ParseReadRequest(R"({"table_id": 5})"));
  ASSERT_OK_AND_ASSIGN(auto query,
                       ParseQueryRequest(R"({"version": 2, "table_id": "cd", "k": 1})"));
  EXPECT_EQ(query.table_id, "cd");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'table_id'",
                             ParseQueryRequest(R"({"table_id": [], "k": 1})"));
}

TEST(RemoteRequest, QueryRequestAsLanceDbSendsIt) {
  ASSERT_OK_AND_ASSIGN(auto q,
                       ParseQueryRequest(R"({"version":null,"prefilter":true,)"
                                         R"("k":9223372036854775807,"vector":[]})"));
  EXPECT_EQ(q.limit, std::nullopt);
  EXPECT_EQ(q.offset, 0);
  EXPECT_TRUE(q.columns.empty());
  ASSERT_OK_AND_ASSIGN(
      q, ParseQueryRequest(R"({"k":5,"offset":2,"filter":"id > 0","columns":["id","x"],)"
                           R"("with_row_id":true,"vector":[],"version":3})"));
  EXPECT_EQ(q.limit, 5);
  EXPECT_EQ(q.offset, 2);
  EXPECT_EQ(q.filter, "id > 0");
  EXPECT_TRUE(q.columns_are_names);
  EXPECT_THAT(q.columns, ElementsAre(Pair("id", "id"), Pair("x", "x")));
  EXPECT_TRUE(q.with_row_id);
  EXPECT_EQ(q.version, 3u);
  // The object form keeps the order sent, not the keys' order.
  ASSERT_OK_AND_ASSIGN(q,
                       ParseQueryRequest(R"({"k":0,"columns":{"z":"a","b":"a + 1"}})"));
  EXPECT_EQ(q.limit, std::nullopt);
  EXPECT_FALSE(q.columns_are_names);
  EXPECT_THAT(q.columns, ElementsAre(Pair("z", "a"), Pair("b", "a + 1")));
  ASSERT_OK_AND_ASSIGN(q, ParseQueryRequest(R"({"k":18446744073709551615})"));
  EXPECT_EQ(q.limit, std::nullopt);
}

TEST(RemoteRequest, MalformedQueriesNameTheField) {
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'k'", ParseQueryRequest(R"({"k":-1})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'k'", ParseQueryRequest(R"({"k":1.5})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'offset'", ParseQueryRequest(R"({"offset":"2"})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'filter'", ParseQueryRequest(R"({"filter":1})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'columns[1]'",
                             ParseQueryRequest(R"({"columns":["a",2]})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'columns.a'",
                             ParseQueryRequest(R"({"columns":{"a":null}})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'columns'", ParseQueryRequest(R"({"columns":3})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'with_row_id'",
                             ParseQueryRequest(R"({"with_row_id":1})"));
  ASSERT_RAISES_WITH_MESSAGE(NotImplemented, "'vector'",
                             ParseQueryRequest(R"({"vector":[1.0, 2.0]})"));
  ASSERT_RAISES_WITH_MESSAGE(NotImplemented, "'full_text_query'",
                             ParseQueryRequest(R"({"full_text_query":{"query":"x"}})"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "not valid JSON",
                             ParseQueryRequest(std::string(100000, '[')));
}

// ParseQueryRequest, lifting the filter or not, makes the same request of `body`, or
// fails the same way.
void ExpectSameParse(std::string_view body) {
  auto fast = ParseQueryRequest(body);
  auto whole = internal::ParseQueryRequestWhole(body);
  ASSERT_EQ(fast.ok(), whole.ok()) << body;
  if (fast.ok()) {
    EXPECT_TRUE(*fast == *whole) << body;
  } else {
    EXPECT_EQ(fast.status().ToString(), whole.status().ToString()) << body;
  }
}

// A take's filter is lifted out of the body before the JSON parse, when that cannot
// change what the body means: the two parses agree on every body.
TEST(RemoteRequest, TheFilterIsLiftedOnlyWhenThatChangesNothing) {
  using internal::LiftFilter;
  auto lifted = LiftFilter(R"j({"k": 5, "filter" : "_rowid in (1,2)", "vector":[]})j");
  ASSERT_TRUE(lifted.has_value());
  EXPECT_EQ(lifted->filter, "_rowid in (1,2)");
  EXPECT_EQ(lifted->rest, R"j({"k": 5, "filter" : "", "vector":[]})j");
  // Long enough for the eight-byte steps, with the quote at every position after them.
  for (int n = 0; n < 20; ++n) {
    const std::string text = "_rowoffset in (" + std::string(n, '7') + ")";
    const std::string body = "{\"filter\":\"" + text + "\"}";  // `filter` views it
    lifted = LiftFilter(body);
    ASSERT_TRUE(lifted.has_value()) << n;
    EXPECT_EQ(lifted->filter, text);
  }
  // Nested "filter" keys are not the query's.
  lifted = LiftFilter(R"j({"columns":{"filter":"a"},"filter":"b"})j");
  ASSERT_TRUE(lifted.has_value());
  EXPECT_EQ(lifted->filter, "b");
  for (const char* body : {
           R"j({"k": 5})j",                             // none
           R"j({"filter": "a", "filter": "b"})j",       // twice
           R"j({"filter": "a\"b"})j",                   // an escape in the value
           R"j({"filt\u0065r": "a", "filter": "b"})j",  // a key with an escape
           R"j({"filter": "caf\u00e9"})j",              // an escape
           "{\"filter\": \"caf\xc3\xa9\"}",             // not ASCII
           "{\"filter\": \"a\tb\"}",                    // a control character
           R"j({"filter": null})j",                     // not a string
           R"j({"filter": ["a"]})j",                    // not a string
           R"j({"filter": "a)j",                        // unterminated
       }) {
    EXPECT_FALSE(LiftFilter(body).has_value()) << body;
  }
  // Lifted or not, every body means the same (and fails the same way).
  for (const char* body : {
           R"j({"filter":"_rowoffset in (3,1,3)","k":9223372036854775807,"vector":[]})j",
           R"j({"filter": "a", "filter": "b"})j",
           R"j({"filt\u0065r": "a", "filter": "b"})j",
           R"j({"filter":"x"} trailing)j",
           R"j({"filter":"x",})j",
           R"j(["filter":"x"])j",
           R"j({"a":"filter":"x"})j",
           R"j({"filter":"x","k":-1})j",
           R"j({"columns":["filter"],"filter":"id > 1","with_row_id":true})j",
           R"j({"filter" "x"})j",
           R"j({"filter":"x")j",
           "{\"filter\":\"x\"}\x01",
           "",
       }) {
    ExpectSameParse(body);
  }
  // nlohmann's parser stops at a NUL byte: a body with one is not valid JSON, lifted
  // or not (found by request_fuzz).
  using namespace std::string_literals;  // NOLINT(build/namespaces)
  for (const std::string& body : {"{\"k\":1}\0\0{\"filter\":\"_rowid IN (3)\"}"s,
                                  "{\"filter\":\"_rowid IN (3)\"}\0"s}) {
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "Invalid query request body: not valid JSON",
                               ParseQueryRequest(body));
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "Invalid read request body: not valid JSON",
                               ParseReadRequest(body));
    ExpectSameParse(body);
  }
}

TEST(RemoteTakeFilter, BothSpellingsOfLanceDbTakes) {
  auto take = MatchTakeFilter("_rowoffset in (0,2,4)");
  ASSERT_TRUE(take.has_value());
  EXPECT_FALSE(take->row_ids);
  EXPECT_THAT(take->values, ElementsAre(0u, 2u, 4u));
  take = MatchTakeFilter("  _rowid IN (5, 9 , 18446744073709551615 )  ");
  ASSERT_TRUE(take.has_value());
  EXPECT_TRUE(take->row_ids);
  EXPECT_THAT(take->values, ElementsAre(5u, 9u, UINT64_MAX));
  take = MatchTakeFilter("_rowoffset In\n(\t7 )");
  ASSERT_TRUE(take.has_value());
  EXPECT_THAT(take->values, ElementsAre(7u));
  take = MatchTakeFilter("_rowid IN ()");
  ASSERT_TRUE(take.has_value());
  EXPECT_TRUE(take->values.empty());
  // Whitespace is C's (space, \t \n \v \f \r), IN any case.
  take = MatchTakeFilter("\v_rowid\fiN\r(3,\n4)\t");
  ASSERT_TRUE(take.has_value());
  EXPECT_THAT(take->values, ElementsAre(3u, 4u));
}

TEST(RemoteTakeFilter, AnythingElseIsAGeneralFilter) {
  for (const char* filter :
       {"_rowoffset in (0,2) AND id > 1", "_rowid = 5", "_rowidx IN (1)",
        "_rowid IN (1,)", "_rowid IN (-1)", "_rowid IN (1.5)", "_rowid IN (1",
        "_rowid IN (18446744073709551616)", "_ROWID IN (1)", "id IN (1, 2)", "",
        "_rowid NOT IN (1)", "_rowid IN (1) OR _rowid IN (2)", "_rowid\xa0IN (1)",
        "_rowid IN (\xd9\xa1)", "_rowid I\xceN (1)"}) {
    EXPECT_FALSE(MatchTakeFilter(filter).has_value()) << filter;
  }
}

TEST(RemoteSchema, LanceJsonSchema) {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64(), false),
       arrow::field("vec", arrow::fixed_size_list(arrow::float32(), 4)),
       arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO)),
       arrow::field("tz", arrow::timestamp(arrow::TimeUnit::NANO, "UTC")),
       arrow::field("s", arrow::struct_({arrow::field("x", arrow::utf8())})),
       arrow::field("d", arrow::decimal128(10, 2)),
       arrow::field("tags", arrow::list(arrow::large_utf8())),
       arrow::field("cat", arrow::dictionary(arrow::int32(), arrow::utf8()))},
      arrow::key_value_metadata({"embedding_functions"}, {"[]"}));
  ASSERT_OK_AND_ASSIGN(auto text, SchemaToJson(*schema));
  auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["metadata"]["embedding_functions"], "[]");
  const auto& f = json["fields"];
  ASSERT_EQ(f.size(), 8u);
  EXPECT_EQ(f[0], nlohmann::json::parse(
                      R"({"name":"id","type":{"type":"int64"},"nullable":false})"));
  EXPECT_EQ(f[1]["type"]["type"], "fixed_size_list");
  EXPECT_EQ(f[1]["type"]["length"], 4);
  EXPECT_EQ(f[1]["type"]["fields"][0]["type"]["type"], "float");
  EXPECT_EQ(f[2]["type"]["type"], "timestamp:us:-");
  EXPECT_EQ(f[3]["type"]["type"], "timestamp:ns:UTC");
  EXPECT_EQ(f[4]["type"]["type"], "struct");
  EXPECT_EQ(f[4]["type"]["fields"][0]["name"], "x");
  EXPECT_EQ(f[4]["type"]["fields"][0]["type"]["type"], "string");
  EXPECT_EQ(f[5]["type"]["type"], "decimal:128:10:2");
  EXPECT_EQ(f[6]["type"]["type"], "list");
  EXPECT_EQ(f[6]["type"]["fields"][0]["type"]["type"], "large_string");
  EXPECT_EQ(f[7]["type"]["type"], "dict:string:int32:false");
  ASSERT_RAISES_WITH_MESSAGE(NotImplemented, "Column 'm'",
                             SchemaToJson(*arrow::schema({arrow::field(
                                 "m", arrow::map(arrow::utf8(), arrow::int32()))})));
}

TEST(RemoteErrors, ErrorJsonEscapes) {
  auto json = nlohmann::json::parse(ErrorJson("bad \"x\"\n\xff"));
  // Invalid UTF-8 is replaced (U+FFFD), never thrown on.
  EXPECT_EQ(json["error"].get<std::string>(), "bad \"x\"\n\xEF\xBF\xBD");
}

}  // namespace
}  // namespace riffledb::remote
