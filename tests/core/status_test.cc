#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/check.h"

namespace moe {
namespace {

// ---------------------------------------------------------------------------------------------
// Constructors

TEST(StatusTest, OkStatusIsOk) {
  EXPECT_TRUE(OkStatus().ok());
  EXPECT_EQ(OkStatus().code(), absl::StatusCode::kOk);
  EXPECT_EQ(StatusMessage(OkStatus()), "");
}

TEST(StatusTest, HelpersGiveCodeAndConcatenatedMessage) {
  struct Case {
    Status status;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {InvalidArgument("a", 1, "b"), absl::StatusCode::kInvalidArgument},
      {NotFound("a", 1, "b"), absl::StatusCode::kNotFound},
      {Internal("a", 1, "b"), absl::StatusCode::kInternal},
      {Unimplemented("a", 1, "b"), absl::StatusCode::kUnimplemented},
      {ResourceExhausted("a", 1, "b"), absl::StatusCode::kResourceExhausted},
      {Unavailable("a", 1, "b"), absl::StatusCode::kUnavailable},
      {FailedPrecondition("a", 1, "b"), absl::StatusCode::kFailedPrecondition},
      {DataLoss("a", 1, "b"), absl::StatusCode::kDataLoss},
      {OutOfRange("a", 1, "b"), absl::StatusCode::kOutOfRange},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code) << c.status;
    EXPECT_EQ(StatusMessage(c.status), "a1b");
  }
}

TEST(StatusTest, HelpersAcceptMixedArgumentTypes) {
  const std::string s = "str";
  const std::string_view sv = "view";
  const char* cstr = "cstr";
  const Status status = InvalidArgument(s, "|", sv, "|", cstr, "|", -42, "|", int64_t{1} << 40, "|",
                                        2.5, "|", size_t{7}, "|", 'x' == 'x');
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusMessage(status), "str|view|cstr|-42|1099511627776|2.5|7|1");
}

TEST(StatusTest, StringViewArgumentsAreNotTruncatedOrOverread) {
  // A view into the middle of a longer buffer: only its own characters may appear.
  const std::string buffer = "0123456789";
  const std::string_view middle(buffer.data() + 3, 4);
  EXPECT_EQ(StatusMessage(NotFound("[", middle, "]")), "[3456]");
  EXPECT_EQ(StatusMessage(Internal(std::string_view())), "");
  // An embedded NUL inside the view is kept.
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(StatusMessage(DataLoss(std::string_view(with_nul))), with_nul);
}

TEST(StatusTest, NoArgumentsGiveEmptyMessage) {
  const Status status = Unavailable();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusMessage(status), "");
}

// ---------------------------------------------------------------------------------------------
// Annotate

TEST(StatusTest, AnnotatePrefixesMessageAndKeepsCode) {
  const Status annotated = Annotate(NotFound("file.bin"), "loading weights");
  EXPECT_EQ(annotated.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusMessage(annotated), "loading weights: file.bin");

  const std::string context = "layer 3";
  const Status twice = Annotate(Annotate(ResourceExhausted("no blocks"), context), "step 9");
  EXPECT_EQ(twice.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusMessage(twice), "step 9: layer 3: no blocks");

  const std::string buffer = "contextXYZ";
  const Status with_view = Annotate(Internal("boom"), std::string_view(buffer.data(), 7));
  EXPECT_EQ(StatusMessage(with_view), "context: boom");
}

TEST(StatusTest, AnnotateOfOkIsOk) {
  const Status s = Annotate(OkStatus(), "context");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(StatusMessage(s), "");
}

// ---------------------------------------------------------------------------------------------
// MOE_RETURN_IF_ERROR

Status FailIf(bool fail, int* calls) {
  ++*calls;
  return fail ? FailedPrecondition("failed at call ", *calls) : OkStatus();
}

Status TwoSteps(bool fail_first, bool fail_second, int* calls, int* reached_end) {
  MOE_RETURN_IF_ERROR(FailIf(fail_first, calls));
  MOE_RETURN_IF_ERROR(FailIf(fail_second, calls));
  ++*reached_end;
  return OkStatus();
}

TEST(StatusMacrosTest, ReturnIfErrorPropagatesFirstError) {
  int calls = 0, reached_end = 0;
  Status s = TwoSteps(true, true, &calls, &reached_end);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusMessage(s), "failed at call 1");
  EXPECT_EQ(calls, 1);  // returned before the second step
  EXPECT_EQ(reached_end, 0);

  calls = 0;
  s = TwoSteps(false, true, &calls, &reached_end);
  EXPECT_EQ(StatusMessage(s), "failed at call 2");
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(reached_end, 0);

  calls = 0;
  s = TwoSteps(false, false, &calls, &reached_end);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 2);  // each expression evaluated exactly once
  EXPECT_EQ(reached_end, 1);
}

StatusOr<int> ReturnIfErrorInStatusOr(bool fail) {
  int calls = 0;
  MOE_RETURN_IF_ERROR(FailIf(fail, &calls));
  return 7;
}

TEST(StatusMacrosTest, ReturnIfErrorWorksInStatusOrFunction) {
  EXPECT_EQ(ReturnIfErrorInStatusOr(false).value(), 7);
  const StatusOr<int> err = ReturnIfErrorInStatusOr(true);
  EXPECT_EQ(err.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(StatusMacrosTest, ReturnIfErrorIsOneStatement) {
  // Usable as the body of an unbraced if/else (the do/while(0) wrapper).
  auto f = [](bool cond) -> Status {
    if (cond)
      MOE_RETURN_IF_ERROR(NotFound("in if"));
    else
      MOE_RETURN_IF_ERROR(Internal("in else"));
    return OkStatus();
  };
  EXPECT_EQ(f(true).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(f(false).code(), absl::StatusCode::kInternal);
}

// ---------------------------------------------------------------------------------------------
// MOE_ASSIGN_OR_RETURN

StatusOr<int> MaybeInt(bool fail, int value, int* calls) {
  ++*calls;
  if (fail) return OutOfRange("no int ", value);
  return value;
}

StatusOr<std::unique_ptr<std::string>> MaybePtr(bool fail, const std::string& text) {
  if (fail) return NotFound("no pointer for ", text);
  return std::make_unique<std::string>(text);
}

StatusOr<int> AddTwo(bool fail_a, bool fail_b, int* calls) {
  MOE_ASSIGN_OR_RETURN(int a, MaybeInt(fail_a, 10, calls));
  MOE_ASSIGN_OR_RETURN(const int b, MaybeInt(fail_b, 32, calls));  // two uses, one function
  return a + b;
}

TEST(StatusMacrosTest, AssignOrReturnAssignsAndPropagates) {
  int calls = 0;
  EXPECT_EQ(AddTwo(false, false, &calls).value(), 42);
  EXPECT_EQ(calls, 2);

  calls = 0;
  StatusOr<int> r = AddTwo(true, false, &calls);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(StatusMessage(r.status()), "no int 10");
  EXPECT_EQ(calls, 1);

  calls = 0;
  r = AddTwo(false, true, &calls);
  EXPECT_EQ(StatusMessage(r.status()), "no int 32");
  EXPECT_EQ(calls, 2);
}

StatusOr<std::string> JoinPtrs(bool fail_a, bool fail_b) {
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<std::string> a, MaybePtr(fail_a, "left"));
  MOE_ASSIGN_OR_RETURN(auto b, MaybePtr(fail_b, "right"));
  return *a + "+" + *b;
}

TEST(StatusMacrosTest, AssignOrReturnMovesMoveOnlyTypes) {
  EXPECT_EQ(JoinPtrs(false, false).value(), "left+right");
  EXPECT_EQ(StatusMessage(JoinPtrs(true, false).status()), "no pointer for left");
  EXPECT_EQ(StatusMessage(JoinPtrs(false, true).status()), "no pointer for right");
  EXPECT_EQ(JoinPtrs(false, true).status().code(), absl::StatusCode::kNotFound);
}

Status AssignToExisting(bool fail, std::unique_ptr<std::string>* out, int* value) {
  MOE_ASSIGN_OR_RETURN(*out, MaybePtr(fail, "existing"));
  int calls = 0;
  MOE_ASSIGN_OR_RETURN(*value, MaybeInt(false, 5, &calls));
  return OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnIntoExistingLvalueInStatusFunction) {
  std::unique_ptr<std::string> p;
  int value = 0;
  ASSERT_TRUE(AssignToExisting(false, &p, &value).ok());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, "existing");
  EXPECT_EQ(value, 5);

  std::unique_ptr<std::string> untouched = std::make_unique<std::string>("keep");
  value = 0;
  const Status s = AssignToExisting(true, &untouched, &value);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  ASSERT_NE(untouched, nullptr);  // not assigned on error
  EXPECT_EQ(*untouched, "keep");
  EXPECT_EQ(value, 0);
}

StatusOr<int> ManyAssignmentsOnOneLineEach() {
  int calls = 0;
  MOE_ASSIGN_OR_RETURN(int a, MaybeInt(false, 1, &calls));
  MOE_ASSIGN_OR_RETURN(int b, MaybeInt(false, 2, &calls));
  MOE_ASSIGN_OR_RETURN(int c, MaybeInt(false, 3, &calls));
  MOE_ASSIGN_OR_RETURN(a, MaybeInt(false, a + b + c, &calls));  // reassign a declared name
  return a * 10 + calls;
}

TEST(StatusMacrosTest, AssignOrReturnManyUsesInOneScope) {
  EXPECT_EQ(ManyAssignmentsOnOneLineEach().value(), 64);
}

// ---------------------------------------------------------------------------------------------
// MOE_CHECK

class CheckDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

int CountingValue(int* calls) {
  ++*calls;
  return 1;
}

TEST(CheckTest, PassingCheckDoesNotEvaluateMessage) {
  int calls = 0;
  MOE_CHECK(1 + 1 == 2) << CountingValue(&calls);
  MOE_CHECK_EQ(3, 3) << CountingValue(&calls);
  MOE_CHECK_NE(3, 4) << CountingValue(&calls);
  MOE_CHECK_LT(3, 4);
  MOE_CHECK_LE(4, 4);
  MOE_CHECK_GT(5, 4);
  MOE_CHECK_GE(5, 5);
  EXPECT_EQ(calls, 0);
}

TEST(CheckTest, CheckIsUsableInUnbracedIfElse) {
  int value = 0;
  if (value == 0)
    MOE_CHECK(value == 0) << "zero";
  else
    value = 5;
  EXPECT_EQ(value, 0);
}

TEST_F(CheckDeathTest, CheckPrintsFileLineConditionAndMessage) {
  // The check must sit on the line after `line`; keep the formatter from reflowing it.
  // clang-format off
  const int line = __LINE__ + 1;
  auto fail = [] { MOE_CHECK(2 + 2 == 5) << "arithmetic is " << "broken: " << 42; };
  // clang-format on
  const std::string pattern = "status_test\\.cc:" + std::to_string(line) +
                              ": check failed: 2 \\+ 2 == 5 arithmetic is broken: 42";
  EXPECT_DEATH(fail(), pattern);
}

TEST_F(CheckDeathTest, CheckEqPrintsBothValues) {
  const int a = 3, b = 4;
  // clang-format off
  const int line = __LINE__ + 1;
  auto fail = [&] { MOE_CHECK_EQ(a, b) << "sizes differ"; };
  // clang-format on
  const std::string pattern = "status_test\\.cc:" + std::to_string(line) +
                              ": check failed: .*a.*==.*b.*\\(3 vs 4\\) sizes differ";
  EXPECT_DEATH(fail(), pattern);
}

TEST_F(CheckDeathTest, OtherComparisonsAbortWithValues) {
  EXPECT_DEATH(MOE_CHECK_LT(7, 2) << "lt", "\\(7 vs 2\\) lt");
  EXPECT_DEATH(MOE_CHECK_GE(1, 9) << "ge", "\\(1 vs 9\\) ge");
  EXPECT_DEATH(MOE_CHECK_NE(std::string("x"), std::string("x")), "\\(x vs x\\)");
}

TEST_F(CheckDeathTest, CheckWithoutMessage) {
  EXPECT_DEATH(MOE_CHECK(false), "status_test\\.cc:[0-9]+: check failed: false");
}

}  // namespace
}  // namespace moe
