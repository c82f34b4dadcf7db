# MAP_32BIT places the mapping in the first 2 GiB.
a = mmap 0 1p rw private|anonymous|32bit  => ok
maps
