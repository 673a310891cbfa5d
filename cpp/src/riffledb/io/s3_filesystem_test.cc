// S3FileSystem's options and environment (no network: nothing here builds a client).
// Reads and commits against an S3 server are tested in Python on moto (tests/test_s3.py).
#include "riffledb/io/s3_filesystem.h"

#include <map>
#include <string>

#include "riffledb/testing/testing.h"

namespace riffledb::io {
namespace {

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const EnvLookup kNoEnv = FakeEnv({});

TEST(S3FileSystem, DefaultsToAwsInUsEast1) {
  ASSERT_OK_AND_ASSIGN(auto fs, S3FileSystem::Make({}, kNoEnv));
  EXPECT_EQ(fs->kind(), "s3");
  EXPECT_EQ(fs->region(), "us-east-1");
  EXPECT_EQ(fs->endpoint(), "https://s3.us-east-1.amazonaws.com");
}

TEST(S3FileSystem, RegionFromOptionsThenEnvironment) {
  ASSERT_OK_AND_ASSIGN(auto a, S3FileSystem::Make({{"region", "eu-west-3"}}, kNoEnv));
  EXPECT_EQ(a->region(), "eu-west-3");
  EXPECT_EQ(a->endpoint(), "https://s3.eu-west-3.amazonaws.com");
  ASSERT_OK_AND_ASSIGN(auto b, S3FileSystem::Make({{"aws_region", "ap-south-1"}},
                                                  FakeEnv({{"AWS_REGION", "x"}})));
  EXPECT_EQ(b->region(), "ap-south-1");
  ASSERT_OK_AND_ASSIGN(auto c,
                       S3FileSystem::Make({}, FakeEnv({{"AWS_REGION", "us-west-2"},
                                                       {"AWS_DEFAULT_REGION", "x"}})));
  EXPECT_EQ(c->region(), "us-west-2");
  ASSERT_OK_AND_ASSIGN(
      auto d, S3FileSystem::Make({}, FakeEnv({{"AWS_DEFAULT_REGION", "sa-east-1"}})));
  EXPECT_EQ(d->region(), "sa-east-1");
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "'region' and 'aws_region' disagree",
      S3FileSystem::Make({{"region", "a"}, {"aws_region", "b"}}, kNoEnv).status());
}

TEST(S3FileSystem, EndpointFromOptionsThenEnvironment) {
  ASSERT_OK_AND_ASSIGN(
      auto a,
      S3FileSystem::Make({{"endpoint", "http://127.0.0.1:9000"}, {"allow_http", "true"}},
                         FakeEnv({{"AWS_ENDPOINT_URL", "https://other"}})));
  EXPECT_EQ(a->endpoint(), "http://127.0.0.1:9000");
  ASSERT_OK_AND_ASSIGN(
      auto b, S3FileSystem::Make({{"aws_endpoint", "https://minio:9443/"}}, kNoEnv));
  EXPECT_EQ(b->endpoint(), "https://minio:9443");
  ASSERT_OK_AND_ASSIGN(
      auto c, S3FileSystem::Make({}, FakeEnv({{"AWS_ENDPOINT_URL", "https://minio"}})));
  EXPECT_EQ(c->endpoint(), "https://minio");
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Invalid endpoint 'minio:9000'",
      S3FileSystem::Make({{"endpoint", "minio:9000"}}, kNoEnv).status());
}

TEST(S3FileSystem, PlainHttpNeedsAllowHttp) {
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "allow_http",
      S3FileSystem::Make({{"endpoint", "http://127.0.0.1:9000"}}, kNoEnv).status());
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "AWS_ENDPOINT_URL",
      S3FileSystem::Make({}, FakeEnv({{"AWS_ENDPOINT_URL", "http://minio"}})).status());
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "allow_http",
      S3FileSystem::Make({{"endpoint", "http://minio"}, {"allow_http", "false"}}, kNoEnv)
          .status());
  ASSERT_OK(S3FileSystem::Make({{"endpoint", "http://minio"}},
                               FakeEnv({{"AWS_ALLOW_HTTP", "true"}}))
                .status());
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "allow_http'='maybe'",
      S3FileSystem::Make({{"endpoint", "http://minio"}, {"allow_http", "maybe"}}, kNoEnv)
          .status());
}

TEST(S3FileSystem, UnknownOptionIsInvalidNamingIt) {
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Unknown storage option 'aws_secret_key'",
      S3FileSystem::Make({{"aws_secret_key", kSecret}}, kNoEnv).status());
  EXPECT_TRUE(S3FileSystem::IsKnownOption("aws_session_token"));
  EXPECT_FALSE(S3FileSystem::IsKnownOption("AWS_SESSION_TOKEN"));
}

TEST(S3FileSystem, CredentialsComeInPairsAndStayOutOfMessages) {
  auto st = S3FileSystem::Make({{"aws_secret_access_key", kSecret}}, kNoEnv).status();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'aws_secret_access_key' needs 'aws_access_key_id'",
                             st);
  EXPECT_EQ(st.message().find(kSecret), std::string::npos);
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "'aws_session_token' needs",
      S3FileSystem::Make({{"aws_session_token", "t"}}, kNoEnv).status());
  ASSERT_OK(
      S3FileSystem::Make(
          {{"aws_access_key_id", "AKID"}, {"aws_secret_access_key", kSecret}}, kNoEnv)
          .status());
}

TEST(S3FileSystem, CreateExclusiveNeedsABucketAndAKey) {
  ASSERT_OK_AND_ASSIGN(auto fs, S3FileSystem::Make({}, kNoEnv));
  for (const char* bad : {"bucket", "/key", "bucket/"}) {
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "bucket/key", fs->CreateExclusive(bad, {}));
  }
}

}  // namespace
}  // namespace riffledb::io
