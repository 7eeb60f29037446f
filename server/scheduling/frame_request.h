#ifndef SERVER_SCHEDULING_FRAME_REQUEST_H_
#define SERVER_SCHEDULING_FRAME_REQUEST_H_

// A request of several frames (a multi-frame DICOM object): each frame is a
// job of its own in the queue, so that frames batch together and with other
// requests; the request is answered when its last frame is.

#include <memory>
#include <vector>

#include "model/imaging/preprocess.h"
#include "server/scheduling/segment_job.h"
#include "server/scheduling/tiled_request.h"

namespace unet {

// Queues one job per frame of `request` (whose image is unused), each with
// the request's model, priority, deadline and mask encoding. When every
// frame is done, their masks go in frame order into the request's
// response's frame_masks, their timing is summed into its timing, and
// `request->done` is called: OK, or the first frame's failure. A frame the
// queue refuses fails the request with the queue's status.
void StartFrameRequest(std::vector<PreparedImage> frames,
                       std::unique_ptr<SegmentJob> request,
                       const SubmitTile& submit);

}  // namespace unet

#endif  // SERVER_SCHEDULING_FRAME_REQUEST_H_
