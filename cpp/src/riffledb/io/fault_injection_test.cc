#include "riffledb/io/fault_injection.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"

namespace riffledb::io {
namespace {

using riffledb::testing::Bytes;

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_fault_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { ASSERT_OK(Local()->DeleteTree(dir_)); }
  std::string Path(const std::string& name) const { return JoinPath(dir_, name); }
  std::string Read(const std::string& name) {
    auto data = Local()->ReadFile(Path(name));
    return data.ok() ? (*data)->ToString() : "<" + data.status().ToString() + ">";
  }

  // Writes "abcdef" in two writes to `name` through fs.
  arrow::Status WriteTwice(FileSystem& fs, const std::string& name) {
    ARROW_ASSIGN_OR_RAISE(auto out, fs.CreateOutput(Path(name)));
    ARROW_RETURN_NOT_OK(out->Write("abc", 3));
    ARROW_RETURN_NOT_OK(out->Write("def", 3));
    return out->Close();
  }

  std::string dir_;
  FaultInjectingFileSystem fs_{Local()};
};

TEST_F(FaultInjectionTest, CountsMutatingOperationsOnly) {
  ASSERT_OK(WriteTwice(fs_, "f"));
  ASSERT_OK(fs_.ReadFile(Path("f")).status());
  ASSERT_OK(fs_.List(dir_).status());
  ASSERT_OK(fs_.CreateExclusive(Path("g"), Bytes("x")));
  ASSERT_OK(fs_.SyncDir(dir_));
  ASSERT_OK(fs_.DeleteFile(Path("g")));
  EXPECT_EQ(fs_.operations(), 7);  // create_output, write, write, close, + 3
  EXPECT_FALSE(fs_.fired());
  std::vector<std::string> log = fs_.log();
  ASSERT_EQ(log.size(), 7u);
  EXPECT_EQ(log[0], "create_output " + Path("f"));
  EXPECT_EQ(log[3], "close " + Path("f"));
  EXPECT_EQ(Read("f"), "abcdef");
}

TEST_F(FaultInjectionTest, ErrorHasNoEffect) {
  fs_.FailAt(2, Fault::kError);
  ASSERT_RAISES_WITH_MESSAGE(IOError, "Injected fault: write", WriteTwice(fs_, "f"));
  EXPECT_TRUE(fs_.fired());
  EXPECT_EQ(Read("f"), "");  // the file exists (created at op 1), nothing written
  fs_.FailAt(1, Fault::kError);
  ASSERT_RAISES(IOError, fs_.CreateExclusive(Path("g"), Bytes("x")));
  EXPECT_EQ(testing::ListNames(dir_), std::vector<std::string>{"f"});
}

TEST_F(FaultInjectionTest, ShortWriteWritesHalf) {
  fs_.FailAt(3, Fault::kShortWrite);
  ASSERT_RAISES(IOError, WriteTwice(fs_, "f"));
  EXPECT_EQ(Read("f"), "abcd");  // "abc" and half of "def"
}

TEST_F(FaultInjectionTest, AfterTakesEffectThenFails) {
  fs_.FailAt(1, Fault::kAfter);
  ASSERT_RAISES(IOError, fs_.CreateExclusive(Path("g"), Bytes("x")));
  EXPECT_EQ(Read("g"), "x");
  fs_.FailAt(4, Fault::kAfter);
  ASSERT_RAISES_WITH_MESSAGE(IOError, "Injected fault: close", WriteTwice(fs_, "f"));
  EXPECT_EQ(Read("f"), "abcdef");
}

TEST_F(FaultInjectionTest, CrashFailsEverythingAfter) {
  fs_.FailAt(2, Fault::kCrash);
  ASSERT_RAISES(IOError, WriteTwice(fs_, "f"));
  ASSERT_RAISES(IOError, fs_.DeleteFile(Path("f")));  // no cleanup after a crash
  ASSERT_RAISES(IOError, fs_.CreateDirs(Path("d")));
  EXPECT_EQ(testing::ListNames(dir_), std::vector<std::string>{"f"});
  ASSERT_OK(fs_.ReadFile(Path("f")).status());  // reads still pass through
  fs_.Disarm();
  ASSERT_OK(fs_.DeleteFile(Path("f")));
  EXPECT_TRUE(testing::ListNames(dir_).empty());
}

}  // namespace
}  // namespace riffledb::io
