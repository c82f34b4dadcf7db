# MAP_FIXED into the middle of a VMA splits it in three.
a = mmap 0 6p rw private|anonymous
mmap $a+2p 1p r private|anonymous|fixed
maps
