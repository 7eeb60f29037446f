#ifndef SERVER_SCHEDULING_TILED_REQUEST_H_
#define SERVER_SCHEDULING_TILED_REQUEST_H_

// One request segmented tile by tile (model/imaging/tiling.h): OVERLAP_TILE,
// an image whose single pass would exceed the server's budget, or test-time
// augmentation, which segments the 8 views of the image
// (model/imaging/test_time_views.h) and averages their soft-max. Its tiles
// go through the same queue and batcher as whole images, so that tiles of
// several requests share forward passes, a few at a time: memory stays
// bounded by the tiles in flight, an URGENT request's jobs overtake a large
// ROUTINE image between its tiles, and the request's deadline and
// cancellation stop its remaining tiles. Each tile's result is written
// straight into the response's mask (and probabilities). With test-time
// augmentation the tiles of all 8 views of the image
// (model/imaging/test_time_views.h) are queued alike and their soft-max is
// averaged.

#include <functional>
#include <memory>
#include <opencv2/core.hpp>

#include "absl/status/status.h"
#include "model/imaging/tiling.h"
#include "server/scheduling/segment_job.h"

namespace unet {

// Queues a tile's job; the executor's Submit.
using SubmitTile = std::function<absl::Status(std::unique_ptr<SegmentJob>)>;

struct TiledRequestOptions {
  int tile_side = 572;      // PlanTiles' tile_side
  int tiles_in_flight = 4;  // queued or running at once (>= 1)
  bool test_time_augmentation = false;
};

// Starts segmenting `image` (decoded, with the model's channels) tile by
// tile. `request` carries what the tiles share: model, priority, deadline,
// cancellation, probabilities, mask encoding, the response to fill and
// `done`, which is called once, after the last tile in flight returned.
void StartTiledRequest(cv::Mat image, const TiledRequestOptions& options,
                       std::unique_ptr<SegmentJob> request, SubmitTile submit);

}  // namespace unet

#endif  // SERVER_SCHEDULING_TILED_REQUEST_H_
