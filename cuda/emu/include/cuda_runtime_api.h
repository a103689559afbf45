// Emulator shim: see cuda/emu/README.md. Found before the toolkit's header only by targets built
// against the emulator.
#pragma once
#include "cuda/emu/runtime_api.h"
