// The server version reported by GetServerInfo and KServe ServerMetadata.
#pragma once

namespace moe::serving {
inline constexpr char kVersion[] = "0.1.0";
}  // namespace moe::serving
