#ifndef SERVER_SCHEDULING_TILED_REQUEST_H_
#define SERVER_SCHEDULING_TILED_REQUEST_H_

// One request segmented tile by tile (model/imaging/tiling.h): OVERLAP_TILE,
// or an image whose single pass would exceed the server's budget. Its tiles
// go through the same queue and batcher as whole images, so that tiles of
// several requests share forward passes, a few at a time: memory stays
// bounded by the tiles in flight, an URGENT request's jobs overtake a large
// ROUTINE image between its tiles, and the request's deadline and
// cancellation stop its remaining tiles. Each tile's result is written
// straight into the response's mask (and probabilities).

#include <functional>
#include <memory>
#include <opencv2/core.hpp>

#include "absl/status/status.h"
#include "model/imaging/tiling.h"
#include "server/scheduling/segment_job.h"

namespace unet {

// Queues a tile's job; the executor's Submit.
using SubmitTile = std::function<absl::Status(std::unique_ptr<SegmentJob>)>;

// Starts segmenting `image` (decoded, the model's channels) as `plan` cuts
// it. `request` carries what the tiles share: model, priority, deadline,
// cancellation, probabilities, mask encoding, the response to fill and
// `done`, which is called once, after the last tile in flight returned.
// Keeps at most `tiles_in_flight` (>= 1) tiles queued or running.
void StartTiledRequest(cv::Mat image, const TilePlan& plan,
                       std::unique_ptr<SegmentJob> request, SubmitTile submit,
                       int tiles_in_flight);

}  // namespace unet

#endif  // SERVER_SCHEDULING_TILED_REQUEST_H_
