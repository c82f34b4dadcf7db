# MREMAP_DONTUNMAP moves the pages and leaves the old range mapped, empty.
a = mmap 0 2p rw private|anonymous
write $a 2p 0x51
b = mremap $a 2p 2p maymove|dontunmap  => ok
read $b 2
read $a 2
maps
