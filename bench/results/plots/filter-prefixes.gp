set terminal pngcairo noenhanced size 960,600
set output 'filter-prefixes.png'
set title 'sluice-bench filter: ns/packet against prefixes'
set xlabel 'prefixes'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
set y2label 'map memory (MiB)'
set y2tics
set y2range [0:*]
$series0 << EOD
1000000 58 57 60
EOD
$series1 << EOD
1000000 45 45 46
EOD
$series2 << EOD
1000000 122 120 125
EOD
$floor << EOD
1000000 30
EOD
$memory << EOD
1000000 1104.505241
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, blocklist hit /32', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, blocklist hit /24', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, blocklist miss', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: empty XDP_DROP', \
     138 with lines dt 3 lw 2 title 'xdp-filter IP hit, 10000 addresses', \
     $memory using 1:2 axes x1y2 with linespoints dt 4 lc 'gray40' title 'map memory (right axis)'
