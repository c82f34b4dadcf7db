mlockall future|onfault    => ok
a = mmap 0 4p rw private|anonymous
mincore $a 4p
write $a 1 0x1
smaps
munlockall
