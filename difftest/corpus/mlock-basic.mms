a = mmap 0 4p rw private|anonymous
mlock $a 2p                => ok
smaps
mincore $a 4p
maps
