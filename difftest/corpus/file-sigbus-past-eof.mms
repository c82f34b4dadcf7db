# Access past the last page of the file: SIGBUS.
f = file 1p
m = mmap 0 3p r shared $f 0    => ok
read $m+1p-8 8
read $m+1p 1                   => SIGBUS/BUS_ADRERR
