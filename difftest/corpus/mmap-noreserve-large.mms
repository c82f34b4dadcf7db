a = mmap 0 1g rw private|anonymous|noreserve  => ok
write $a+100m 1 0x5
mincore $a+100m 2p
maps
