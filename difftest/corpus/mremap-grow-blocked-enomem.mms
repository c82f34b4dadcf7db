# Without MREMAP_MAYMOVE, growing into an occupied range fails.
r = mmap 0 4p rw private|anonymous
mprotect $r+2p 2p r
mremap $r 2p 3p 0          => ENOMEM
maps
