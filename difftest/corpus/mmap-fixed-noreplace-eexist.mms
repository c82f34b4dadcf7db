# MAP_FIXED_NOREPLACE fails with EEXIST over an existing mapping.
a = mmap 0 3p rw private|anonymous
mmap $a+1p 1p r private|anonymous|fixed_noreplace   => EEXIST
mmap $a+2p 2p r private|anonymous|fixed_noreplace   => EEXIST
maps
