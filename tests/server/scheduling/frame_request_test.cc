#include "server/scheduling/frame_request.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace unet {
namespace {

using segmentation::v1::SegmentResponse;

// Frames whose padded width tells them apart.
std::vector<PreparedImage> Frames(int count) {
  std::vector<PreparedImage> frames(count);
  for (int i = 0; i < count; ++i) frames[i].padded_width = 100 + i;
  return frames;
}

struct Outcome {
  bool called = false;
  absl::Status status;
};

std::unique_ptr<SegmentJob> Request(SegmentResponse* response,
                                    Outcome* outcome) {
  auto request = std::make_unique<SegmentJob>();
  request->response = response;
  request->priority = segmentation::v1::SegmentRequest::URGENT;
  request->mask_encoding = segmentation::v1::RAW;
  request->done = [outcome](const absl::Status& status) {
    EXPECT_FALSE(outcome->called) << "done called twice";
    outcome->called = true;
    outcome->status = status;
  };
  return request;
}

TEST(FrameRequestTest, AnswersWithEveryFramesMaskInFrameOrder) {
  SegmentResponse response;
  Outcome outcome;
  std::vector<std::unique_ptr<SegmentJob>> queued;
  StartFrameRequest(Frames(3), Request(&response, &outcome),
                    [&](std::unique_ptr<SegmentJob> job) {
                      EXPECT_EQ(job->priority,
                                segmentation::v1::SegmentRequest::URGENT);
                      EXPECT_EQ(job->mask_encoding, segmentation::v1::RAW);
                      queued.push_back(std::move(job));
                      return absl::OkStatus();
                    });
  ASSERT_EQ(queued.size(), 3u);
  // Frames finish out of order, each in its own batch.
  for (int i : {2, 0, 1}) {
    SegmentJob& job = *queued[i];
    job.response->mutable_mask()->set_data(
        std::to_string(job.image.padded_width));
    job.response->mutable_timing()->set_inference_us(10);
    job.response->mutable_timing()->set_batch_size(i + 1);
    EXPECT_FALSE(outcome.called);
    job.done(absl::OkStatus());
  }
  ASSERT_TRUE(outcome.called);
  EXPECT_TRUE(outcome.status.ok());
  ASSERT_EQ(response.frame_masks_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(response.frame_masks(i).data(), std::to_string(100 + i));
  }
  EXPECT_EQ(response.timing().inference_us(), 30);
  EXPECT_EQ(response.timing().batch_size(), 3);
}

TEST(FrameRequestTest, OneFailedFrameFailsTheRequestOnce) {
  SegmentResponse response;
  Outcome outcome;
  std::vector<std::unique_ptr<SegmentJob>> queued;
  StartFrameRequest(Frames(3), Request(&response, &outcome),
                    [&](std::unique_ptr<SegmentJob> job) {
                      queued.push_back(std::move(job));
                      return absl::OkStatus();
                    });
  queued[0]->done(absl::OkStatus());
  queued[1]->done(absl::DeadlineExceededError("late"));
  queued[2]->done(absl::InternalError("later"));
  ASSERT_TRUE(outcome.called);
  EXPECT_TRUE(absl::IsDeadlineExceeded(outcome.status));
  EXPECT_EQ(response.frame_masks_size(), 0);
}

TEST(FrameRequestTest, AFrameTheQueueRefusesFailsTheRequest) {
  SegmentResponse response;
  Outcome outcome;
  std::vector<std::unique_ptr<SegmentJob>> queued;
  StartFrameRequest(Frames(3), Request(&response, &outcome),
                    [&](std::unique_ptr<SegmentJob> job) {
                      if (queued.size() == 2) {
                        return absl::ResourceExhaustedError("queue full");
                      }
                      queued.push_back(std::move(job));
                      return absl::OkStatus();
                    });
  EXPECT_FALSE(outcome.called);  // the two queued frames are still running
  for (auto& job : queued) job->done(absl::OkStatus());
  ASSERT_TRUE(outcome.called);
  EXPECT_TRUE(absl::IsResourceExhausted(outcome.status));
}

}  // namespace
}  // namespace unet
