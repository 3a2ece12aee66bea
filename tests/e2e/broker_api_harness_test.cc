// The end-to-end fixture itself (broker_api_test.h): a broker that fails to restart makes the test
// fail with a message, not crash the test process.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "broker_api_test.h"

namespace wasmq::testing {
namespace {

class BrokerApiHarnessTest : public BrokerApiTest {
 public:
  using BrokerApiTest::restart;  // EXPECT_FATAL_FAILURE's statement runs outside the fixture
  static BrokerApiHarnessTest* current;  // and cannot use `this`
};
BrokerApiHarnessTest* BrokerApiHarnessTest::current = nullptr;

TEST_F(BrokerApiHarnessTest, FailedRestartFailsTheTestInsteadOfCrashingIt) {
  start();
  broker_->kill_now();  // the broker is gone: its exit is not a clean one
  current = this;
  EXPECT_FATAL_FAILURE(current->restart(), "the broker did not stop cleanly");
  // What a test body does next when its restart failed: calls that fail, no null dereference.
  EXPECT_NONFATAL_FAILURE(admin("GET", "/api/v1/etl/modules"), "no broker is running");
  EXPECT_NONFATAL_FAILURE(data("GET", "/api/v1/topics"), "no broker is running");
  EXPECT_NONFATAL_FAILURE(upload("passthrough", "p"), "no broker is running");
}

}  // namespace
}  // namespace wasmq::testing
