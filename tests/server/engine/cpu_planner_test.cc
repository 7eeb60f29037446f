#include "server/engine/cpu_planner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/server/fake_engine.h"

namespace unet {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

// The thread count the planner gave the calling thread.
thread_local int current_threads = 1;

void SetThreads(int threads) { current_threads = threads; }

// Engines whose passes sleep for `ms_per_image` times the batch, divided by
// speedup(threads): sleeping threads overlap perfectly, as independent
// passes on separate cores do.
std::vector<std::shared_ptr<InferenceEngine>> SleepingEngines(
    int count, double ms_per_image, std::function<double(int)> speedup,
    double batch_penalty = 1.25) {
  std::vector<std::shared_ptr<InferenceEngine>> engines;
  for (int i = 0; i < count; ++i) {
    auto engine = std::make_shared<FakeEngine>();
    FakeEngine* raw = engine.get();
    engine->before_forward = [raw, ms_per_image, speedup, batch_penalty] {
      const int batch = raw->last_batch;
      const double penalty = batch > 1 ? batch_penalty : 1.0;
      absl::SleepFor(absl::Milliseconds(ms_per_image * batch * penalty /
                                        speedup(current_threads)));
    };
    engines.push_back(std::move(engine));
  }
  return engines;
}

// The smallest valid input of the seed U-Net, one image.
FloatTensor Sample() {
  FloatTensor sample{{1, 1, 188, 188}, {}};
  sample.values.assign(188 * 188, 0.5f);
  return sample;
}

PlannerOptions Quick() {
  PlannerOptions options;
  options.budget = absl::Milliseconds(400);
  options.min_passes = 3;
  return options;
}

TEST(CpuPlanCandidatesTest, DividesTheCpusAmongOneTwoFourAndAllInstances) {
  auto plans = [](int cpus, int batch) {
    std::vector<std::string> names;
    for (const CpuPlan& p : CpuPlanCandidates(cpus, batch)) {
      names.push_back(
          absl::StrCat(p.instances, "x", p.threads, "/b", p.max_batch_size));
    }
    return names;
  };
  EXPECT_THAT(plans(2, 8), ElementsAre("1x2/b1", "2x1/b1", "1x2/b2", "2x1/b2"));
  EXPECT_THAT(plans(8, 1), ElementsAre("1x8/b1", "2x4/b1", "4x2/b1", "8x1/b1"));
  EXPECT_THAT(plans(6, 1), ElementsAre("1x6/b1", "2x3/b1", "4x1/b1", "6x1/b1"));
  EXPECT_THAT(plans(1, 2), ElementsAre("1x1/b1", "1x1/b2"));
  EXPECT_THAT(plans(0, 1), ElementsAre("1x1/b1"));
}

TEST(ChooseCpuPlanTest, RunsPassesSideBySideWhenThreadsDoNotHelp) {
  const auto engines = SleepingEngines(2, 20, [](int) { return 1.0; });
  PlannerOptions options = Quick();
  options.budget = absl::Seconds(3);  // all four candidates
  const auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 2),
                                    SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{2, 1, 1}));
  ASSERT_EQ(choice->measured.size(), 4u);
  // Two instances finish about twice the images of one.
  EXPECT_GT(choice->chosen.images_per_second,
            1.6 * choice->measured[0].images_per_second);
  EXPECT_NEAR(choice->chosen.latency_ms, 20, 10);
}

TEST(ChooseCpuPlanTest, KeepsTheLowLatencyPlanWhenThreadsScale) {
  // Two threads halve a pass: as many images either way, but a request
  // alone takes twice as long on one thread.
  const auto engines =
      SleepingEngines(2, 40, [](int threads) { return double(threads); });
  const auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1),
                                    SetThreads, Quick());
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{1, 2, 1}));
  EXPECT_NEAR(choice->chosen.latency_ms, 20, 10);
}

TEST(ChooseCpuPlanTest, TradesLatencyWithinTheTolerance) {
  // Two threads make a pass 25 % faster; independent passes give more.
  const auto engines = SleepingEngines(
      2, 40, [](int threads) { return threads == 2 ? 1.25 : 1.0; });
  PlannerOptions options = Quick();
  options.latency_tolerance = 0.6;
  auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1),
                              SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{2, 1, 1}));

  options.latency_tolerance = 0.05;
  choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1), SetThreads,
                         options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{1, 2, 1}));
}

TEST(ChooseCpuPlanTest, ALoneRequestOnAllCpusKeepsTheLatencyOfSharing) {
  // Threads help a pass, but less than independent passes do.
  const auto engines = SleepingEngines(
      2, 40, [](int threads) { return std::sqrt(double(threads)); });
  PlannerOptions options = Quick();
  auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1),
                              SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  // Fixed threads: two instances would make a lone request 41 % slower.
  EXPECT_EQ(choice->plan, (CpuPlan{1, 2, 1}));

  // Shared CPUs: a lone request runs on both, busy instances on one each.
  options.lone_request_uses_all_cpus = true;
  choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1), SetThreads,
                         options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{2, 1, 1}));
  EXPECT_NEAR(choice->chosen.latency_ms, 40 / std::sqrt(2.0), 10);
}

TEST(ChooseCpuPlanTest, IntraOpThreadsMustWinClearlyOverInstances) {
  // Serving preempts intra-op teams: two threads of one instance must beat
  // two instances by more than PlannerOptions::intra_op_penalty.
  PlannerOptions options = Quick();
  options.lone_request_uses_all_cpus = true;  // equal idle latencies
  const auto slightly = SleepingEngines(
      2, 40, [](int threads) { return threads == 2 ? 2.16 : 1; });
  auto choice = ChooseCpuPlan(slightly, Sample(), CpuPlanCandidates(2, 1),
                              SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_GT(choice->measured[0].images_per_second,
            choice->measured[1].images_per_second);  // 1 x 2 timed faster
  EXPECT_EQ(choice->plan, (CpuPlan{2, 1, 1}));

  const auto clearly = SleepingEngines(
      2, 40, [](int threads) { return threads == 2 ? 2.6 : 1; });
  choice = ChooseCpuPlan(clearly, Sample(), CpuPlanCandidates(2, 1), SetThreads,
                         options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{1, 2, 1}));
}

TEST(ChooseCpuPlanTest, PrefersBatchesWhenTheyPay) {
  const auto engines = SleepingEngines(
      2, 20, [](int) { return 1.0; }, /*batch_penalty=*/0.5);
  PlannerOptions options = Quick();
  options.budget = absl::Seconds(3);  // all four candidates
  const auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 2),
                                    SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{2, 1, 2}));
}

TEST(ChooseCpuPlanTest, ALaterPlanMustWinClearly) {
  // Batches of two cost the same per image, and measure a little faster
  // (each pass oversleeps once, a batch of two shares it): not enough, so
  // batch 1 stays. At 40 % faster they win.
  const auto slightly = SleepingEngines(
      2, 100, [](int) { return 1.0; }, /*batch_penalty=*/1.0);
  PlannerOptions options = Quick();
  options.budget = absl::Seconds(3);
  auto choice = ChooseCpuPlan(slightly, Sample(), CpuPlanCandidates(2, 2),
                              SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan.max_batch_size, 1);

  const auto clearly = SleepingEngines(
      2, 20, [](int) { return 1.0; }, /*batch_penalty=*/0.6);
  choice = ChooseCpuPlan(clearly, Sample(), CpuPlanCandidates(2, 2), SetThreads,
                         options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan.max_batch_size, 2);
}

TEST(ChooseCpuPlanTest, RoundsOutlastASlowPhaseOfTheMachine) {
  // Threads do not help, so two instances of one thread are the faster
  // plan. The machine is slow (4x) while that plan is timed the first time:
  // the second and third thread-count settings, its two instances'.
  static std::atomic<int> settings{0};
  settings = 0;
  const ThreadCountSetter counting = [](int threads) {
    current_threads = threads;
    ++settings;
  };
  std::vector<std::shared_ptr<InferenceEngine>> engines;
  for (int i = 0; i < 2; ++i) {
    auto engine = std::make_shared<FakeEngine>();
    engine->before_forward = [] {
      const bool slow_phase = settings == 2 || settings == 3;
      absl::SleepFor(absl::Milliseconds(slow_phase ? 40 : 10));
    };
    engines.push_back(std::move(engine));
  }
  PlannerOptions options = Quick();
  options.lone_request_uses_all_cpus = true;  // equal idle latencies
  options.rounds = 1;
  auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1),
                              counting, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{1, 2, 1}));  // misled by the slow phase

  settings = 0;
  options.rounds = 2;
  options.budget = absl::Milliseconds(800);
  choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1), counting,
                         options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->plan, (CpuPlan{2, 1, 1}));
  EXPECT_EQ(settings, 6);  // both rounds ran
}

TEST(ChooseCpuPlanTest, StopsTryingWhenTheBudgetIsSpent) {
  const auto engines = SleepingEngines(2, 10, [](int) { return 1.0; });
  PlannerOptions options = Quick();
  options.budget = absl::Milliseconds(1);
  options.min_passes = 1;
  const auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 2),
                                    SetThreads, options);
  ASSERT_TRUE(choice.ok()) << choice.status();
  // The first candidate is always measured; no other fits in 1 ms.
  EXPECT_THAT(choice->measured,
              ElementsAre(Field(&PlanMeasurement::plan, CpuPlan{1, 2, 1})));
  EXPECT_LT(choice->spent, absl::Seconds(1));
}

TEST(ChooseCpuPlanTest, ReportsAFailingEngine) {
  auto engines = SleepingEngines(2, 1, [](int) { return 1.0; });
  static_cast<FakeEngine&>(*engines[1]).fail_with =
      absl::ResourceExhaustedError("fake out of memory");
  const auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1),
                                    SetThreads, Quick());
  EXPECT_TRUE(absl::IsResourceExhausted(choice.status())) << choice.status();
}

TEST(ChooseCpuPlanTest, RefusesPlansWithMoreInstancesThanEngines) {
  const auto engines = SleepingEngines(1, 1, [](int) { return 1.0; });
  const auto choice = ChooseCpuPlan(engines, Sample(), CpuPlanCandidates(2, 1),
                                    SetThreads, Quick());
  EXPECT_TRUE(absl::IsInvalidArgument(choice.status()));
  EXPECT_THAT(choice.status().message(), HasSubstr("2 instances"));
}

}  // namespace
}  // namespace unet
