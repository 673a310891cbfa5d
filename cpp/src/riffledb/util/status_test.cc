#include "riffledb/util/status.h"

#include <arrow/result.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace riffledb {
namespace {

TEST(ErrorKind, SurvivesPropagationAndKeepsCodeAndMessage) {
  auto failing = []() -> arrow::Status {
    return WithErrorKind(arrow::Status::Invalid("Table 't' was not found"),
                         ErrorKind::kTableNotFound);
  };
  auto caller = [&]() -> arrow::Result<int> {
    ARROW_RETURN_NOT_OK(failing());
    return 1;
  };
  arrow::Status st = caller().status();
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_EQ(st.message(), "Table 't' was not found");
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kTableNotFound);
}

TEST(ErrorKind, AbsentWithoutDetailAndOnOk) {
  EXPECT_EQ(GetErrorKind(arrow::Status::Invalid("x")), std::nullopt);
  EXPECT_EQ(GetErrorKind(arrow::Status::OK()), std::nullopt);
  EXPECT_TRUE(WithErrorKind(arrow::Status::OK(), ErrorKind::kCorruption).ok());
}

TEST(ErrorKind, OtherDetailsAreNotMistakenForIt) {
  class Other : public arrow::StatusDetail {
   public:
    const char* type_id() const override { return "other"; }
    std::string ToString() const override { return "other"; }
  };
  auto st = arrow::Status::IOError("x").WithDetail(std::make_shared<Other>());
  EXPECT_EQ(GetErrorKind(st), std::nullopt);
}

TEST(ErrorKind, EachKindRoundTripsOnAnyCode) {
  for (ErrorKind kind :
       {ErrorKind::kTableNotFound, ErrorKind::kTableExists, ErrorKind::kCorruption}) {
    EXPECT_EQ(GetErrorKind(WithErrorKind(arrow::Status::IOError("x"), kind)), kind);
  }
  EXPECT_EQ(WithErrorKind(arrow::Status::IOError("x"), ErrorKind::kCorruption).ToString(),
            "IOError: x. Detail: corrupt file");
}

}  // namespace
}  // namespace riffledb
