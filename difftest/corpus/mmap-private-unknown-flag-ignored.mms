# Plain MAP_PRIVATE ignores unknown flags.
a = mmap 0 1p rw private|anonymous|0x10000000
maps
