#include "serving/server_config.h"

namespace moe::serving {

Status ServerConfig::Validate() const {
  if (host.empty()) return InvalidArgument("--host must not be empty");
  if (port < 0 || port > 65535) return InvalidArgument("--port must be in [0, 65535], got ", port);
  if (served_model_name.empty()) return InvalidArgument("--served-model-name must not be empty");
  if (kserve_text_model == kserve_token_model) {
    return InvalidArgument("the KServe text and token model names must differ");
  }
  if (max_message_bytes < 1024) return InvalidArgument("max message size is too small");
  if (drain_timeout_s < 0) return InvalidArgument("--drain-timeout must be >= 0");
  return OkStatus();
}

}  // namespace moe::serving
