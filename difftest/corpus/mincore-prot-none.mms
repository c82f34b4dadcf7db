a = mmap 0 2p rw private|anonymous
write $a 2p 0x1
mprotect $a 2p none
mincore $a 2p
