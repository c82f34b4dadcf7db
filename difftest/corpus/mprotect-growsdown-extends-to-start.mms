# On a MAP_GROWSDOWN VMA, PROT_GROWSDOWN extends the change down to its start.
a = mmap 0 4p rw private|anonymous|growsdown
mprotect $a+2p 1p r|growsdown  => ok
maps
